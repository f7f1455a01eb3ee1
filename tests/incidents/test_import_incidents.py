"""manage.py import_incidents: bulk intake from CSV/GeoJSON, idempotent and resumable."""

import datetime
import json
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from gis.crs import wgs84_to_gcj02
from incidents import importing
from incidents.models import Incident, Source, TimelineEntry
from incidents.services.intake import Report, deadline_for, report_incident
from incidents.workflow import State

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
HEADER = "id,lon,lat,category,time\n"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def run(path, *args, report=None):
    extra = ["--report", str(report)] if report else []
    call_command("import_incidents", str(path), *args, *extra, verbosity=0)
    return json.loads(report.read_text(encoding="utf-8")) if report else None


GOOD_AND_BAD = (
    HEADER
    + "a1,104.005,30.607,C0101,2025-06-09T09:00:00\n"  # 1 good: micro11
    + "a2,104.015,30.602,C0101,2025-06-09 10:00\n"  # 2 good: micro22
    + "a3,abc,30.607,C0101,2025-06-09T09:00:00\n"  # 3 text in a number column
    + "a4,,30.607,C0101,2025-06-09T09:00:00\n"  # 4 empty coordinate
    + "a5,204.0,30.607,C0101,2025-06-09T09:00:00\n"  # 5 out of range
    + "a6,104.005,30.607,X9999,2025-06-09T09:00:00\n"  # 6 unknown category
    + "a7,104.005,30.607,C0101,2025-13-45\n"  # 7 bad date
    + ",104.005,30.607,C0101,2025-06-09T09:00:00\n"  # 8 missing id
    + "a1,104.005,30.607,C0101,2025-06-09T09:00:00\n"  # 9 duplicate in file
    + "a10,110.0,35.0,C0101,2025-06-09T09:00:00+08:00\n"  # 10 good, unassigned
    + "a11,104.01003,30.607,C0101,2025-06-09T09:00:00\n"  # 11 good, near the grid edge
)
ID_ARGS = ["--id-field", "id", "--time-field", "time"]


def test_good_rows_imported_bad_rows_listed_and_rerun_adds_nothing(
    tmp_path, small_territory, manhole
):
    path = write(tmp_path, "mixed.csv", GOOD_AND_BAD)
    report = run(path, *ID_ARGS, report=tmp_path / "r.json")
    summary = report["summary"]
    assert summary["imported"] == 4 and summary["unchanged"] == 0
    assert summary["rejected"] == 7
    assert summary["unassigned"] == 1 and summary["near_boundary"] == 1
    assert summary["rejected_by_reason"] == {
        "bad_coordinates": 2,
        "bad_date": 1,
        "duplicate_in_file": 1,
        "missing_id": 1,
        "out_of_range": 1,
        "unknown_category": 1,
    }
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [
        (3, "bad_coordinates"),
        (4, "bad_coordinates"),
        (5, "out_of_range"),
        (6, "unknown_category"),
        (7, "bad_date"),
        (8, "missing_id"),
        (9, "duplicate_in_file"),
    ]
    assert all(r["message"] for r in report["rejected"])
    assert "'abc'" in report["rejected"][0]["message"]

    t = small_territory
    a1 = Incident.objects.get(external_id="a1")
    assert (a1.street, a1.community, a1.grid, a1.unit) == (
        t["street"],
        t["community"],
        t["grid1"],
        t["micro11"],
    )
    assert a1.boundary_version == t["micro11"].current_version()
    assert a1.reported_at == datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)  # naive = Shanghai
    # 8 working hours: 09:00-12:00, 13:30-17:30, then 08:30-09:30 the next day
    assert a1.deadline == datetime.datetime(2025, 6, 10, 9, 30, tzinfo=SH)
    assert a1.deadline == deadline_for(manhole, a1.reported_at, urgent=False).due
    assert a1.state == State.REPORTED and a1.source == "import" and not a1.unassigned
    (entry,) = a1.timeline.all()
    assert entry.action == "report" and entry.to_state == State.REPORTED
    assert Incident.objects.get(external_id="a2").unit == t["micro22"]
    far = Incident.objects.get(external_id="a10")
    assert far.unassigned and far.unit is None
    near = Incident.objects.get(external_id="a11")
    assert near.near_boundary and near.unit == t["micro21"]
    assert {c["code"] for c in near.boundary_candidates} >= {t["grid1"].code}
    assert TimelineEntry.objects.count() == 4

    again = run(path, *ID_ARGS, report=tmp_path / "r2.json")["summary"]
    assert (again["imported"], again["unchanged"], again["rejected"]) == (0, 4, 7)
    assert Incident.objects.count() == 4 and TimelineEntry.objects.count() == 4


def test_dates_out_of_range_are_rejected_rows_and_a_bad_first_copy_does_not_hide_a_good_one(
    tmp_path, small_territory, manhole
):
    tomorrow = datetime.datetime.now(SH) + datetime.timedelta(days=3)
    path = write(
        tmp_path,
        "dates.csv",
        HEADER
        + "d1,104.005,30.607,C0101,9999-12-31T23:00:00\n"  # 1 beyond any deadline
        + "d2,104.005,30.607,C0101,0001-01-01T00:00:00\n"  # 2 before any clock
        + f"d3,104.005,30.607,C0101,{tomorrow:%Y-%m-%dT%H:%M:%S}\n"  # 3 in the future
        + "d4,104.005,30.607,C0101,2025-06-09T09:00:00\n"  # 4 good
        + "d5,abc,30.607,C0101,2025-06-09T09:00:00\n"  # 5 bad coordinates …
        + "d5,104.005,30.607,C0101,2025-06-09T09:00:00\n"  # 6 … its good copy
        + "d5,104.005,30.607,C0101,2025-06-09T09:00:00\n",  # 7 a repeat of a good row
    )
    report = run(path, *ID_ARGS, report=tmp_path / "r.json")
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [
        (1, "bad_date"),
        (2, "bad_date"),
        (3, "bad_date"),
        (5, "bad_coordinates"),
        (7, "duplicate_in_file"),
    ]
    assert "9999-12-31T23:00:00" in report["rejected"][0]["message"]
    assert sorted(Incident.objects.values_list("external_id", flat=True)) == ["d4", "d5"]


def test_a_report_file_that_cannot_be_written_is_refused_before_importing(
    tmp_path, small_territory, manhole
):
    path = write(tmp_path, "one.csv", HEADER + "r1,104.005,30.607,C0101,2025-06-09T09:00\n")
    with pytest.raises(CommandError, match="there is no folder"):
        run(path, *ID_ARGS, report=tmp_path / "missing" / "r.json")
    with pytest.raises(CommandError, match="is a directory"):
        run(path, *ID_ARGS, report=tmp_path)
    assert not Incident.objects.exists()


def test_an_interrupted_import_says_how_to_finish(tmp_path, small_territory, manhole, monkeypatch):
    path = write(tmp_path, "one.csv", HEADER + "r1,104.005,30.607,C0101,2025-06-09T09:00\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        "incidents.management.commands.import_incidents.import_incidents", interrupted
    )
    with pytest.raises(CommandError, match="run the same command again"):
        run(path, *ID_ARGS)


def test_gcj02_rows_land_in_the_right_microgrid_and_keep_the_input(
    tmp_path, small_territory, manhole
):
    lon, lat = wgs84_to_gcj02(104.005, 30.607)
    path = write(tmp_path, "gcj.csv", f"{HEADER}g1,{lon!r},{lat!r},C0101,2025-06-09T09:00\n")
    run(path, "--crs", "gcj02", *ID_ARGS)
    incident = Incident.objects.get(external_id="g1")
    assert incident.unit == small_territory["micro11"]
    assert incident.input_crs == "gcj02"
    assert (incident.input_lon, incident.input_lat) == (lon, lat)
    assert incident.location.x == pytest.approx(104.005, abs=1e-6)


def test_category_map_gbk_file_and_custom_time_format(tmp_path, small_territory, manhole):
    mapping = write(
        tmp_path, "map.csv", "source_value,category_code\n井盖缺失,C0101\n", encoding="utf-8"
    )
    text = (
        "编号,经度,纬度,类型,时间\n"
        "k1,104.005,30.607,井盖缺失,06/09/2025 09:00:00 AM\n"
        "k2,104.005,30.607,路灯不亮,06/09/2025 09:00:00 AM\n"
    )
    path = write(tmp_path, "gbk.csv", text, encoding="gbk")
    args = ["--encoding", "gbk", "--lon-field", "经度", "--lat-field", "纬度"]
    args += ["--category-field", "类型", "--category-map", str(mapping), "--id-field", "编号"]
    args += ["--time-field", "时间", "--time-format", "%m/%d/%Y %I:%M:%S %p"]
    report = run(path, *args, report=tmp_path / "r.json")
    assert report["summary"]["imported"] == 1
    assert report["rejected"] == [
        {"row": 2, "reason": "unknown_category", "message": "'路灯不亮' is not in the category map"}
    ]
    k1 = Incident.objects.get(external_id="k1")
    assert k1.category == manhole and k1.unit == small_territory["micro11"]
    assert k1.reported_at == datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)


def test_a_category_map_that_maps_nothing_or_one_value_twice_is_refused(
    tmp_path, small_territory, manhole
):
    path = write(tmp_path, "d.csv", HEADER + "m1,104.005,30.607,井盖缺失,2025-06-09T09:00\n")
    args = [*ID_ARGS]
    empty = write(tmp_path, "empty.csv", "source_value,category_code\n")
    with pytest.raises(CommandError, match="empty.csv maps no values"):
        run(path, *args, "--category-map", str(empty))
    twice = write(
        tmp_path, "twice.csv", "source_value,category_code\n井盖缺失,C0101\n井盖缺失,C0102\n"
    )
    with pytest.raises(
        CommandError, match="row 2: '井盖缺失' is mapped to C0102 here and to C0101"
    ):
        run(path, *args, "--category-map", str(twice))
    assert not Incident.objects.exists()


def test_a_number_with_underscores_is_not_a_coordinate(tmp_path, small_territory, manhole):
    path = write(tmp_path, "u.csv", HEADER + "u1,104_005,30.607,C0101,2025-06-09T09:00\n")
    report = run(path, *ID_ARGS, report=tmp_path / "r.json")
    assert [r["reason"] for r in report["rejected"]] == ["bad_coordinates"]


def test_without_id_field_derived_ids_make_reruns_idempotent(tmp_path, small_territory, manhole):
    path = write(tmp_path, "noid.csv", "lon,lat,category\n104.005,30.607,C0101\nx,1,C0101\n")
    first = run(path, report=tmp_path / "r.json")["summary"]
    second = run(path, report=tmp_path / "r.json")["summary"]
    assert (first["imported"], first["rejected"]) == (1, 1)
    assert (second["imported"], second["unchanged"]) == (0, 1)
    (external_id,) = Incident.objects.values_list("external_id", flat=True)
    assert re.fullmatch(r"row-[0-9a-f]{20}", external_id)


def test_derived_ids_are_pinned(tmp_path, small_territory, manhole):
    """Ids derived by an earlier release must come out the same, or re-running a file it
    imported would import every row again."""
    timed = write(
        tmp_path, "t.csv", "lon,lat,category,time\n104.005,30.607,C0101,2025-06-09T09:00\n"
    )
    run(timed, "--time-field", "time")
    untimed = write(tmp_path, "noid.csv", "lon,lat,category\n104.0050,30.607,C0101\n")
    run(untimed)
    assert sorted(Incident.objects.values_list("external_id", flat=True)) == [
        "row-a4b9a30f66b725284652",  # the point, C0101, 2025-06-09T01:00:00+00:00
        "row-ab5ff76e264b84b10d4a",  # the point, C0101, the file noid.csv
    ]


def test_files_without_times_are_told_apart_by_name(tmp_path, small_territory, manhole):
    """Without times, the same point and category on two days is two reports."""
    row = "lon,lat,category\n104.005,30.607,C0101\n"
    for name in ("monday.csv", "tuesday.csv", "tuesday.csv"):
        run(write(tmp_path, name, row))
    assert Incident.objects.count() == 2


def test_another_export_of_the_same_reports_imports_nothing_twice(
    tmp_path, small_territory, manhole
):
    first = write(
        tmp_path,
        "a.csv",
        "lon,lat,category,time,status\n"
        "104.005,30.607,C0101,2025-06-09T09:00,open\n"
        "104.006,30.607,C0101,2025-06-09T10:00,open\n",
    )
    run(first, "--time-field", "time")
    # a later export: other columns and order, another status, times written otherwise
    second = write(
        tmp_path,
        "b.csv",
        "time,category,lat,lon,status,updated\n"
        "2025-06-09T02:00:00+00:00,C0101,30.6070,104.006,closed,2025-06-10\n"
        "2025-06-09 09:00:00+08:00,C0101,30.607,104.005,closed,2025-06-10\n"
        "2025-06-10T09:00:00+08:00,C0101,30.607,104.005,open,\n",
    )
    summary = run(second, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    assert (summary["imported"], summary["unchanged"]) == (1, 2)


def test_derived_ids_follow_the_rows_not_the_file(tmp_path, small_territory, manhole):
    header = "lon,lat,category,time\n"
    a = "104.005,30.607,C0101,2025-06-09T09:00\n"
    b = "104.006,30.607,C0101,2025-06-09T10:00\n"
    c = "104.007,30.607,C0101,2025-06-09T11:00\n"
    args = ["--time-field", "time"]
    october = write(tmp_path / "2025-10", "export.csv", header + a + b)
    assert run(october, *args, report=tmp_path / "r.json")["summary"]["imported"] == 2
    # Another month's export of the same name: its rows are new, whatever their numbers.
    november = write(tmp_path / "2025-11", "export.csv", header + c)
    summary = run(november, *args, report=tmp_path / "r.json")["summary"]
    assert (summary["imported"], summary["unchanged"]) == (1, 0)
    # Renamed, newest row first and one row added: only the new row is imported.
    d = "104.008,30.607,C0101,2025-06-09T12:00\n"
    again = write(tmp_path, "renamed.csv", header + d + c + b + a)
    summary = run(again, *args, report=tmp_path / "r.json")["summary"]
    assert (summary["imported"], summary["unchanged"]) == (1, 3)
    assert Incident.objects.count() == 4
    assert Incident.objects.values("external_id").distinct().count() == 4


def test_identical_rows_without_ids_are_each_imported_once(tmp_path, small_territory, manhole):
    row = "104.005,30.607,C0101,2025-06-09T09:00\n"
    path = write(tmp_path, "twice.csv", "lon,lat,category,time\n" + row + row)
    first = run(path, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    second = run(path, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    assert (first["imported"], second["imported"], second["unchanged"]) == (2, 0, 2)
    ids = sorted(Incident.objects.values_list("external_id", flat=True))
    assert ids[1] == ids[0] + "#2"


def test_derived_ids_of_geojson_features_include_their_point(tmp_path, small_territory, manhole):
    def feature(lon):
        return {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, 30.607]},
            "properties": {"category": "C0101", "time": "2025-06-09T09:00"},
        }

    path = tmp_path / "points.geojson"
    features = [feature(104.005), feature(104.006)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    first = run(path, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    second = run(path, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    assert (first["imported"], second["unchanged"]) == (2, 2)
    assert not any("#" in i for i in Incident.objects.values_list("external_id", flat=True))
    # the file grows a feature with a property the others lack; a feature's keys reordered
    grown = [feature(104.007), feature(104.006), feature(104.005)]
    grown[0]["properties"]["note"] = "new"
    grown[2]["properties"] = dict(reversed(list(grown[2]["properties"].items())))
    path.write_text(json.dumps({"type": "FeatureCollection", "features": grown}))
    third = run(path, "--time-field", "time", report=tmp_path / "r.json")["summary"]
    assert (third["imported"], third["unchanged"]) == (1, 2)


def test_killed_run_then_rerun_gives_every_good_row_exactly_once(
    tmp_path, small_territory, manhole, monkeypatch
):
    lines = [HEADER]
    for i in range(1, 11):
        lines.append(f"k{i},104.00{i % 9 + 1},30.607,C0101,2025-06-09T09:00\n")
    lines.append("k3,104.005,30.607,C0101,2025-06-09T09:00\n")  # duplicate
    path = write(tmp_path, "kill.csv", "".join(lines))
    # Killed inside the second chunk's transaction, after its incidents were inserted and
    # before their timeline entries: the chunk must roll back as a whole.
    real = importing._Writer.write_entries
    calls = []

    def dies_in_second_chunk(writer, cursor, n, columns):
        calls.append(n)
        if len(calls) == 2:
            assert Incident.objects.filter(external_id="k5").exists()
            raise KeyboardInterrupt
        return real(writer, cursor, n, columns)

    monkeypatch.setattr(importing._Writer, "write_entries", dies_in_second_chunk)
    with pytest.raises(CommandError, match="interrupted"):  # Ctrl-C: said, not a traceback
        run(path, *ID_ARGS, "--chunk-size", "4")
    assert sorted(Incident.objects.values_list("external_id", flat=True)) == [
        "k1",
        "k2",
        "k3",
        "k4",
    ]
    assert TimelineEntry.objects.count() == 4
    monkeypatch.undo()
    summary = run(path, *ID_ARGS, "--chunk-size", "4", report=tmp_path / "r.json")["summary"]
    assert (summary["imported"], summary["unchanged"], summary["rejected"]) == (6, 4, 1)
    ids = list(Incident.objects.values_list("external_id", flat=True))
    assert sorted(ids) == sorted(f"k{i}" for i in range(1, 11))
    assert TimelineEntry.objects.count() == 10


def test_wrong_encoding_is_refused_with_a_hint(tmp_path, small_territory, manhole):
    path = write(tmp_path, "gbk.csv", f"{HEADER}k1,104.005,30.607,C0101,井盖\n", encoding="gbk")
    with pytest.raises(CommandError, match="--encoding gbk"):
        run(path, *ID_ARGS)


def many_rows(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i},104.005,30.607,C0101,2025-06-09T09:00\n" for i in range(1, n + 1)]


def test_a_damaged_line_late_in_a_good_file_rejects_only_its_row(
    tmp_path, small_territory, manhole
):
    rows = many_rows(importing.ENCODING_PROBE_ROWS + 5)
    rows[-3] = rows[-3].replace("C0101", "C01\xff01")  # one byte that is no UTF-8
    path = tmp_path / "damaged.csv"
    path.write_bytes(HEADER.encode() + "".join(rows).encode().replace(b"\xc3\xbf", b"\xff"))
    report = run(path, *ID_ARGS, report=tmp_path / "r.json")
    bad_row = importing.ENCODING_PROBE_ROWS + 3
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [(bad_row, "bad_encoding")]
    assert f"line {bad_row + 1} " in report["rejected"][0]["message"]  # the header is line 1
    assert report["summary"]["imported"] == len(rows) - 1


def test_an_unbalanced_quote_is_a_rejected_row_naming_its_lines(tmp_path, small_territory, manhole):
    rows = many_rows(40)
    rows[9] = 'q10,104.005,30.607,"C0101,2025-06-09T09:00\n'  # the quote is never closed …
    rows[35] = 'q36",104.005,30.607,C0101,2025-06-09T09:00\n'  # … until here
    path = write(tmp_path, "quote.csv", HEADER + "".join(rows))
    report = run(path, *ID_ARGS, report=tmp_path / "r.json")
    (rejected,) = report["rejected"]
    assert rejected["reason"] == "bad_row" and "lines 11 to 37" in rejected["message"]
    assert len(rejected["message"]) < 200
    assert report["summary"]["imported"] == 9 + 4  # before and after the swallowed lines
    # a cell beyond the csv module's limit: said with its line, nothing half-imported
    huge = write(tmp_path, "huge.csv", HEADER + 'h1,104.005,30.607,"' + "x" * 200_000 + "\n")
    with pytest.raises(CommandError, match=r"huge.csv line \d+: .*unbalanced quote"):
        run(huge, *ID_ARGS)


def test_geojson_points(tmp_path, small_territory, manhole):
    features = [
        {
            "type": "Feature",
            "properties": {"sr": "j1", "kind": "C0101", "at": "2025-06-09T09:00:00+08:00"},
            "geometry": {"type": "Point", "coordinates": [104.015, 30.607]},
        },
        {
            "type": "Feature",
            "properties": {"sr": "j2", "kind": "C0101", "at": "2025-06-09T09:00:00+08:00"},
            "geometry": {"type": "LineString", "coordinates": [[104.0, 30.6], [104.1, 30.7]]},
        },
    ]
    path = write(
        tmp_path,
        "points.geojson",
        json.dumps({"type": "FeatureCollection", "features": features}),
    )
    args = ["--id-field", "sr", "--category-field", "kind", "--time-field", "at"]
    report = run(path, *args, report=tmp_path / "r.json")
    assert report["summary"]["imported"] == 1
    assert [(r["row"], r["reason"]) for r in report["rejected"]] == [(2, "bad_coordinates")]
    assert Incident.objects.get(external_id="j1").unit == small_territory["micro21"]


def geojson_of(*items) -> str:
    """A FeatureCollection of points at micro-grid 21 with the given properties."""
    features = [
        {
            "type": "Feature",
            "properties": properties,
            "geometry": {"type": "Point", "coordinates": [104.015, 30.607]},
        }
        for properties in items
    ]
    return json.dumps({"type": "FeatureCollection", "features": features})


def test_geojson_number_ids_keep_their_form_and_a_null_does_not_change_them(
    tmp_path, small_territory, manhole
):
    args = ["--id-field", "sr", "--category-field", "kind"]
    first = write(tmp_path, "a.geojson", geojson_of(*({"sr": i, "kind": "C0101"} for i in (1, 2))))
    run(first, *args)
    # the same ids with a null among them (read as floats): still 1 and 2, nothing new
    again = write(
        tmp_path,
        "b.geojson",
        geojson_of({"sr": 1, "kind": "C0101"}, {"sr": 2, "kind": "C0101"}, {"sr": None}),
    )
    report = run(again, *args, report=tmp_path / "r.json")
    assert report["summary"]["unchanged"] == 2 and report["summary"]["imported"] == 0
    assert sorted(Incident.objects.values_list("external_id", flat=True)) == ["1", "2"]
    # ids beyond what a float holds exactly, with a null: refused, not merged into one
    big = write(
        tmp_path,
        "big.geojson",
        geojson_of(
            {"sr": 12345678901234567, "kind": "C0101"},
            {"sr": 12345678901234569, "kind": "C0101"},
            {"sr": None, "kind": "C0101"},
        ),
    )
    report = run(big, *args, report=tmp_path / "r2.json")
    assert [r["reason"] for r in report["rejected"]] == ["bad_id", "bad_id", "missing_id"]
    assert Incident.objects.count() == 2


def test_geojson_without_a_named_property_is_refused_naming_it(tmp_path, small_territory, manhole):
    path = write(tmp_path, "p.geojson", geojson_of({"sr": "x1", "kind": "C0101"}))
    with pytest.raises(CommandError, match="no property nosuch .the properties are sr, kind"):
        run(path, "--id-field", "nosuch", "--category-field", "kind")
    assert not Incident.objects.exists()


SAME_AS_INTAKE = [
    ("s1", 104.005, 30.607, "wgs84"),  # deep in micro11
    ("s2", 104.01003, 30.607, "wgs84"),  # near the grid edge: candidates
    ("s3", 110.0, 35.0, "wgs84"),  # outside the territory: unassigned
    ("s4", *wgs84_to_gcj02(104.015, 30.602), "gcj02"),  # converted, in micro22
]
NOT_COMPARED = {"id", "external_id", "created_at"}


def stored_row(incident) -> dict:
    """The incident's row as the database holds it (every column but the identity ones)."""
    columns = [f.column for f in Incident._meta.concrete_fields if f.attname not in NOT_COMPARED]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {Incident._meta.db_table} WHERE id = %s",
            [incident.pk],
        )
        return dict(zip(columns, cursor.fetchone(), strict=True))


def import_and_intake(tmp_path, manhole, external_id, lon, lat, crs):
    """The same report imported from a file and taken in by intake, both read back."""
    reported_at = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
    line = f"{external_id},{lon!r},{lat!r},C0101,{reported_at.isoformat()}\n"
    run(write(tmp_path, "same.csv", HEADER + line), "--crs", crs, *ID_ARGS)
    imported = Incident.objects.get(external_id=external_id)
    reported = report_incident(
        Report(lon, lat, manhole, Source.IMPORT, crs=crs, reported_at=reported_at)
    )
    reported.refresh_from_db()
    return imported, reported


@pytest.mark.parametrize(("external_id", "lon", "lat", "crs"), SAME_AS_INTAKE)
def test_imported_incident_equals_the_one_intake_makes(
    tmp_path, small_territory, manhole, external_id, lon, lat, crs
):
    imported, reported = import_and_intake(tmp_path, manhole, external_id, lon, lat, crs)
    for f in Incident._meta.concrete_fields:
        if f.attname in NOT_COMPARED:
            continue
        ours, theirs = getattr(imported, f.attname), getattr(reported, f.attname)
        if f.name == "location":
            ours, theirs = (ours.x, ours.y, ours.srid), (theirs.x, theirs.y, theirs.srid)
        assert ours == theirs, f.name
    assert imported.unassigned == (external_id == "s3")
    assert imported.near_boundary == (external_id == "s2")
    assert bool(imported.boundary_candidates) == (external_id == "s2")
    assert imported.deadline == datetime.datetime(2025, 6, 10, 9, 30, tzinfo=SH)
    assert imported.deadline_note == reported.deadline_note
    # as stored: the same column values, text of JSON and times included
    assert stored_row(imported) == stored_row(reported)

    (ours,) = imported.timeline.all()
    (theirs,) = reported.timeline.all()
    for f in TimelineEntry._meta.concrete_fields:
        if f.attname not in ("id", "incident_id", "at"):
            assert getattr(ours, f.attname) == getattr(theirs, f.attname), f.name
    assert ours.data == {"unassigned": external_id == "s3", "near_boundary": external_id == "s2"}


def test_imported_candidates_carry_everything_intake_records(tmp_path, small_territory, manhole):
    imported, reported = import_and_intake(tmp_path, manhole, *SAME_AS_INTAKE[1])
    assert imported.boundary_candidates == reported.boundary_candidates


def test_fractional_working_days_give_the_intake_deadline(tmp_path, small_territory, manhole):
    manhole.deadline_unit = "days"
    manhole.deadline_normal, manhole.deadline_urgent = Decimal("1.5"), Decimal("1")
    manhole.save()
    imported, reported = import_and_intake(tmp_path, manhole, *SAME_AS_INTAKE[0])
    assert imported.deadline == reported.deadline
    assert imported.overdue_3x_at == reported.overdue_3x_at


def third_write_fails(monkeypatch):
    """The third chunk handed to a writer fails ("disk full") instead of being written."""
    real = importing._Writer.write
    calls = []

    def write(writer, rows):
        calls.append(rows.count)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(writer, rows)

    monkeypatch.setattr(importing._Writer, "write", write)


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_writer_threads_write_every_chunk_once(
    tmp_path, small_territory, manhole, monkeypatch
):
    """Outside a transaction the chunks are written by writer threads with their own
    connections: every good row lands once, odd characters survive COPY's text format, and
    a writer that fails stops the run with its error; re-running completes it."""
    lines = [HEADER]
    ids = [f"t{i}" for i in range(1, 12)] + ["back\\slash", '"tab\there"']
    for n, external_id in enumerate(ids):
        lines.append(f"{external_id},104.00{n % 9 + 1},30.607,C0101,2025-06-09T09:00\n")
    path = write(tmp_path, "threads.csv", "".join(lines))
    expected = [i.strip('"') for i in ids]
    third_write_fails(monkeypatch)
    with pytest.raises(RuntimeError, match="disk full"):
        run(path, *ID_ARGS, "--chunk-size", "3")
    done = set(Incident.objects.values_list("external_id", flat=True))
    assert len(done) == 3 * (len(done) // 3) and done < set(expected)  # whole chunks only
    assert TimelineEntry.objects.count() == len(done)
    monkeypatch.undo()
    summary = run(path, *ID_ARGS, "--chunk-size", "3", report=tmp_path / "r.json")["summary"]
    assert (summary["imported"], summary["unchanged"]) == (len(expected) - len(done), len(done))
    assert sorted(Incident.objects.values_list("external_id", flat=True)) == sorted(expected)
    assert TimelineEntry.objects.count() == len(expected)
    assert Incident.objects.get(external_id="t1").unit == small_territory["micro11"]


@pytest.mark.django_db(transaction=True)
def test_the_progress_counts_a_chunk_once_it_is_stored(
    tmp_path, small_territory, manhole, monkeypatch
):
    """Writer threads store the chunks: a chunk counts when it is committed, so a chunk that
    failed to be written is not counted; a chunk of rows stored before counts at once."""
    lines = [HEADER] + [f"p{i},104.005,30.607,C0101,2025-06-09T09:00\n" for i in range(12)]
    path = write(tmp_path, "progress.csv", "".join(lines))
    options = importing.ImportOptions(id_field="id", time_field="time", chunk_size=3)
    third_write_fails(monkeypatch)
    counted = []
    with pytest.raises(RuntimeError, match="disk full"):
        importing.import_incidents(path, options, progress=counted.append)
    stored = Incident.objects.count()
    assert stored < 12 and sum(counted) == stored
    monkeypatch.undo()
    counted = []
    importing.import_incidents(path, options, progress=counted.append)
    assert sum(counted) == 12 and Incident.objects.count() == 12


@pytest.mark.parametrize(
    ("text", "value"),
    [("104.5", 104.5), (" 104.5 ", 104.5), ("104,5", 104.5), (" 30,25\t", 30.25), (7, 7.0)],
)
def test_coordinates_read_with_spaces_and_decimal_commas(text, value):
    assert importing._number(text) == value


@pytest.mark.parametrize("text", ["abc", "", None, "nan", "-inf", "1e999", True, "1,5,0"])
def test_coordinates_that_are_not_finite_numbers_are_refused(text):
    with pytest.raises((ValueError, TypeError)):
        importing._number(text)


@pytest.mark.parametrize(
    ("text", "copied"),
    [
        ("plain 文字", "plain 文字"),
        ('{"name": "\\u4e1c\\u57ce"}', '{"name": "\\\\u4e1c\\\\u57ce"}'),
        ("a\tb\nc\rd\\e", "a\\tb\\nc\\rd\\\\e"),
        ("\\t", "\\\\t"),  # a backslash then "t", not a tab
    ],
)
def test_copy_text_escapes_exactly_what_copy_reads_specially(text, copied):
    assert importing._copy_escape(text) == copied


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL planner setting")
def test_the_id_lookup_leaves_the_planner_settings_as_it_found_them(
    tmp_path, small_territory, manhole
):
    run(write(tmp_path, "one.csv", HEADER + GOOD_AND_BAD.splitlines()[1] + "\n"), *ID_ARGS)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = on")
        assert importing.existing_ids(["a1", "nope"]) == {"a1"}
        cursor.execute("SHOW enable_seqscan")
        assert cursor.fetchone() == ("on",)


@pytest.mark.parametrize(("delimiter", "separator"), [(";", ";"), ("tab", "\t"), ("|", "|")])
def test_cells_separated_otherwise(tmp_path, small_territory, manhole, delimiter, separator):
    text = HEADER + "s1,104.005,30.607,C0101,2025-06-09T09:00\n"
    path = write(tmp_path, "semi.csv", text.replace(",", separator))
    summary = run(path, *ID_ARGS, "--delimiter", delimiter, report=tmp_path / "r.json")["summary"]
    assert summary["imported"] == 1
    assert Incident.objects.get().external_id == "s1"


def test_a_file_separated_otherwise_is_refused_with_a_hint(tmp_path, small_territory, manhole):
    text = HEADER + "s1,104.005,30.607,C0101,2025-06-09T09:00\n"
    path = write(tmp_path, "semi.csv", text.replace(",", ";"))
    with pytest.raises(CommandError, match=r"no column lon.*separated by ';': try --delimiter ';'"):
        run(path, *ID_ARGS)
    path = write(tmp_path, "tabs.csv", text.replace(",", "\t"))
    with pytest.raises(CommandError, match=r"separated by '\\t': try --delimiter tab"):
        run(path, *ID_ARGS)
    path = write(tmp_path, "wide.csv", text.replace(",", "，"))  # a full-width comma
    with pytest.raises(CommandError, match="try --delimiter '，'"):
        run(path, *ID_ARGS)
    with pytest.raises(CommandError, match="the delimiter must be one character"):
        run(path, *ID_ARGS, "--delimiter", ";;")
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("body", "lines", "rows"),
    [
        (
            "a1,104.005,30.607,C0101,2025-06-09T09:00\na2,104.006,30.607,C0101,2025-06-09T09:00\n",
            2,
            2,
        ),
        ("a1,104.005,30.607,C0101,2025-06-09T09:00\n\na2,104.006,30.607,C0101,x", 3, 2),
        ('a1,104.005,30.607,"C01\n01",2025-06-09T09:00\n', 2, 1),
        ("", 0, 0),
    ],
)
def test_the_progress_knows_about_how_many_rows_come(
    tmp_path, small_territory, manhole, body, lines, rows
):
    path = write(tmp_path, "p.csv", HEADER + body)
    expected, done = [], []
    options = importing.ImportOptions(id_field="id", time_field="time", chunk_size=1)
    result = importing.import_incidents(path, options, progress=done.append, expect=expected.append)
    assert expected == [lines]
    assert (sum(done), len(done), result.rows) == (rows, rows, rows)


def test_the_progress_of_a_geojson_counts_its_features(tmp_path, small_territory, manhole):
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [104.005, 30.607]},
        "properties": {"category": "C0101"},
    }
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature] * 3}))
    expected, done = [], []
    options = importing.ImportOptions(chunk_size=2)
    importing.import_incidents(path, options, progress=done.append, expect=expected.append)
    assert (expected, done) == ([3], [2, 1])
