"""The bulk import's foreign keys on PostgreSQL: checked a chunk at a time (one query per key,
the referenced rows locked as PostgreSQL's own checks lock them) where the role may set
session_replication_role, and by PostgreSQL row by row elsewhere (incidents.importing._Writer)."""

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from incidents import importing
from incidents.importing import ImportOptions, import_incidents
from incidents.models import Incident, TimelineEntry

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's key checks"),
]

HEADER = "id,lon,lat,category,time\n"
ROWS = (
    "".join(f"f{i},104.00{i},30.607,C0101,2025-06-09T09:00:00\n" for i in range(1, 6))
    + "f9,110.0,35.0,C0101,2025-06-09T09:00:00\n"
)  # outside every unit: no unit keys
OPTIONS = ImportOptions(id_field="id", time_field="time", chunk_size=4)
MISSING = 987_654_321


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8")
    return path


@pytest.fixture
def set_based():
    if not importing._may_skip_row_key_checks(connection):
        pytest.skip("this database role may not set session_replication_role")


def with_a_missing_unit(monkeypatch):
    """The second chunk's first incident names a micro-grid that does not exist."""
    real = importing._Builder.build
    calls = []

    def build(builder, goods):
        rows = real(builder, goods)
        calls.append(rows)
        if len(calls) == 2:
            rows.incident["unit_id"][0] = MISSING
        return rows

    monkeypatch.setattr(importing._Builder, "build", build)


def other_connection():
    s = connection.settings_dict
    return psycopg.connect(
        dbname=s["NAME"],
        user=s["USER"],
        password=s["PASSWORD"],
        host=s["HOST"] or None,
        port=s["PORT"] or None,
        autocommit=True,
    )


def setting(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_keys_are_checked_a_chunk_at_a_time_and_their_rows_locked(
    csv_file, small_territory, manhole, set_based
):
    """Inside the caller's transaction (the writer on this connection): every key of the
    chunks is checked, the referenced rows stay locked FOR KEY SHARE until the transaction
    ends, and the row-by-row checks are back on for what the caller does next."""
    with transaction.atomic():
        result = import_incidents(csv_file, OPTIONS)
        assert result.imported == 6 and result.unassigned == 1
        assert setting("session_replication_role") == "origin"
        incident = Incident.objects.get(external_id="f1")
        locked = [
            ("grids_unit", incident.unit_id),
            ("grids_unit", incident.grid_id),
            ("grids_unit", incident.community_id),
            ("grids_unit", incident.street_id),
            ("grids_boundaryversion", incident.boundary_version_id),
            ("incidents_category", incident.category_id),
        ]
        with other_connection() as other:
            for table, key in locked:
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT", [key])
            # a lock that does not conflict with KEY SHARE is still granted
            other.execute(
                "SELECT 1 FROM grids_unit WHERE id = %s FOR NO KEY UPDATE NOWAIT",
                [incident.unit_id],
            )
    with other_connection() as other:  # committed: the locks are gone
        other.execute(
            "SELECT 1 FROM grids_unit WHERE id = %s FOR UPDATE NOWAIT", [incident.unit_id]
        )


def test_a_missing_key_stops_the_run_naming_it_and_its_chunk_is_not_written(
    csv_file, small_territory, manhole, set_based, monkeypatch
):
    with_a_missing_unit(monkeypatch)
    with pytest.raises(
        IntegrityError, match=rf"incidents_incident\.unit_id: no grids_unit .*{MISSING}"
    ):
        import_incidents(csv_file, OPTIONS)
    # the first chunk (4 rows) is in; the second rolled back whole
    assert Incident.objects.count() == 4 == TimelineEntry.objects.count()
    assert setting("session_replication_role") == "origin"


def test_the_check_names_the_column_and_the_missing_keys(small_territory, manhole, set_based):
    writer = importing._Writer(connection, importing._Builder.FIELDS)
    with connection.cursor() as cursor:
        with pytest.raises(
            IntegrityError, match=rf"incidents_category row with id {MISSING}, {MISSING + 1}$"
        ):
            writer.incidents.check_keys(cursor, {"category_id": [manhole.pk, MISSING + 1, MISSING]})
        writer.incidents.check_keys(cursor, {"category_id": [manhole.pk, manhole.pk]})
        with pytest.raises(IntegrityError, match=r"and 2 more"):
            writer.incidents.check_keys(cursor, {"unit_id": list(range(MISSING, MISSING + 12))})


@pytest.mark.django_db(transaction=True)
def test_without_the_privilege_postgresql_checks_each_row(
    csv_file, small_territory, manhole, monkeypatch
):
    """A role that may not set the parameter: the writer threads leave the checks to
    PostgreSQL, which refuses the missing key at commit; good chunks are written alike."""
    monkeypatch.setattr(importing, "_may_skip_row_key_checks", lambda connection: False)
    with_a_missing_unit(monkeypatch)
    with pytest.raises(IntegrityError, match="grids_unit"):
        import_incidents(csv_file, OPTIONS)
    assert Incident.objects.count() == 4 == TimelineEntry.objects.count()
    monkeypatch.undo()
    monkeypatch.setattr(importing, "_may_skip_row_key_checks", lambda connection: False)
    result = import_incidents(csv_file, OPTIONS)
    assert (result.imported, result.unchanged) == (2, 4)
    assert Incident.objects.filter(unit__isnull=False).count() == 5


@pytest.mark.django_db(transaction=True)
def test_writer_threads_check_keys_a_chunk_at_a_time(
    csv_file, small_territory, manhole, set_based, monkeypatch
):
    with_a_missing_unit(monkeypatch)
    with pytest.raises(IntegrityError, match=f"{MISSING}"):
        import_incidents(csv_file, OPTIONS)
    assert Incident.objects.count() == 4 == TimelineEntry.objects.count()
    monkeypatch.undo()
    result = import_incidents(csv_file, OPTIONS)
    assert (result.imported, result.unchanged) == (2, 4)
    assert Incident.objects.filter(unit__isnull=False).count() == 5
