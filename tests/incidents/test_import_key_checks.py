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


def checks_keys() -> bool:
    return importing._Writer(connection, importing._Builder.FIELDS).checks_keys


@pytest.fixture
def set_based():
    if not checks_keys():
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


OUR_ERROR = rf"incidents_incident\.unit_id: no grids_unit .*{MISSING}"


def stops_at_the_missing_unit(csv_file, monkeypatch, match=OUR_ERROR):
    """The run stops in its second chunk; the first chunk (4 rows) is in, the second is not."""
    with_a_missing_unit(monkeypatch)
    with pytest.raises(IntegrityError, match=match):
        import_incidents(csv_file, OPTIONS)
    assert Incident.objects.count() == 4 == TimelineEntry.objects.count()


def a_rerun_completes(csv_file):
    result = import_incidents(csv_file, OPTIONS)
    assert (result.imported, result.unchanged) == (2, 4)
    assert Incident.objects.filter(unit__isnull=False).count() == 5


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
    stops_at_the_missing_unit(csv_file, monkeypatch)
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
    monkeypatch.setattr(importing, "_may_skip_row_key_checks", lambda connection, tables: False)
    stops_at_the_missing_unit(csv_file, monkeypatch, match="grids_unit")
    monkeypatch.undo()
    monkeypatch.setattr(importing, "_may_skip_row_key_checks", lambda connection, tables: False)
    a_rerun_completes(csv_file)


@pytest.mark.django_db(transaction=True)
def test_writer_threads_check_keys_a_chunk_at_a_time(
    csv_file, small_territory, manhole, set_based, monkeypatch
):
    stops_at_the_missing_unit(csv_file, monkeypatch)
    monkeypatch.undo()
    a_rerun_completes(csv_file)


def test_the_row_by_row_checks_are_off_for_the_chunks_writes(
    csv_file, small_territory, manhole, set_based, monkeypatch
):
    """With the writer's own check taken out, a missing key gets in and PostgreSQL has no
    check of it queued either: the chunk's writes were made in replica mode."""
    monkeypatch.setattr(importing._Table, "check_keys", lambda *args, **kwargs: None)
    with_a_missing_unit(monkeypatch)
    with transaction.atomic():
        import_incidents(csv_file, OPTIONS)
        assert Incident.objects.filter(unit_id=MISSING).count() == 1
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # would raise for a queued check
        transaction.set_rollback(True)


def test_a_chunk_failing_in_replica_mode_leaves_the_checks_on(
    csv_file, small_territory, manhole, set_based, monkeypatch
):
    def fails(writer, cursor, n, columns):
        assert setting("session_replication_role") == "replica"
        raise RuntimeError("disk full")

    monkeypatch.setattr(importing._Writer, "write_entries", fails)
    with pytest.raises(RuntimeError, match="disk full"):
        import_incidents(csv_file, OPTIONS)
    assert setting("session_replication_role") == "origin"
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    "ddl",
    [
        # a user's trigger would be skipped in replica mode
        "CREATE FUNCTION weige_test_noop() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NEW; END $$;"
        " CREATE TRIGGER weige_test_noop AFTER INSERT ON incidents_incident"
        " FOR EACH ROW EXECUTE FUNCTION weige_test_noop()",
        # so would the re-check of a deferrable unique constraint
        "ALTER TABLE incidents_timelineentry ADD CONSTRAINT weige_test_once"
        " UNIQUE (incident_id, action, at) DEFERRABLE",
        # a foreign key the models do not declare would go unchecked
        "ALTER TABLE incidents_timelineentry ADD CONSTRAINT weige_test_key"
        " FOREIGN KEY (incident_id) REFERENCES incidents_category (id) NOT VALID",
    ],
)
def test_tables_with_other_triggers_or_keys_are_left_to_the_database(
    small_territory, set_based, ddl
):
    with connection.cursor() as cursor:
        cursor.execute(ddl)
    assert checks_keys() is False


def test_a_role_that_may_not_lock_the_referenced_rows_is_left_to_the_database(
    small_territory, set_based
):
    """FOR KEY SHARE needs UPDATE on the referenced table, which PostgreSQL's own checks do
    not (they run as the table's owner)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE weige_test_importer")
        cursor.execute("GRANT SET ON PARAMETER session_replication_role TO weige_test_importer")
        cursor.execute(
            "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO weige_test_importer"
        )
        cursor.execute("SET ROLE weige_test_importer")
    try:
        assert checks_keys() is True
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute("REVOKE UPDATE ON grids_unit FROM weige_test_importer")
            cursor.execute("SET ROLE weige_test_importer")
        assert checks_keys() is False
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
