"""import_units / export_units / check_coverage on real files, as a user runs them."""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from django.core.management import CommandError, call_command
from django.db import connection

from gis.crs import wgs84_to_gcj02
from grids.geometry import to_shapely
from grids.models import BoundaryVersion, Unit
from tests.conftest import COMMUNITY, rect

pytestmark = pytest.mark.django_db

BASE = Path(__file__).resolve().parents[2]


def grids_frame(rows):
    """rows: (code, name, geometry[, parent]) → a GeoDataFrame of grids under COMMUNITY."""
    return gpd.GeoDataFrame(
        {
            "code": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "parent": [r[3] if len(r) > 3 else COMMUNITY for r in rows],
            "households": [300] * len(rows),
            "geometry": [r[2] for r in rows],
        },
        crs="EPSG:4326",
    )


def three_grids():
    """A clean partition of the test community (104.00–104.02 × 30.60–30.61) into 3 grids."""
    xs = [104.00, 104.007, 104.014, 104.02]
    return [
        (f"{COMMUNITY}{i + 1:03d}", f"第{i + 1}网格", rect(xs[i], 30.60, xs[i + 1], 30.61))
        for i in range(3)
    ]


@pytest.fixture
def community(make_unit):
    district = make_unit("district", "510199000000", rect(103.9, 30.5, 104.2, 30.8))
    street = make_unit(
        "street", "510199001000", rect(103.95, 30.55, 104.05, 30.65), parent=district
    )
    return make_unit("community", COMMUNITY, rect(104.00, 30.60, 104.02, 30.61), parent=street)


def run_import(path, *args, **kwargs):
    call_command(
        "import_units",
        str(path),
        "--kind",
        kwargs.pop("kind", "grid"),
        *args,
        verbosity=0,
        **kwargs,
    )


def read_report(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_clean_geojson_imports_every_feature(community, tmp_path):
    path = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(path)
    report = tmp_path / "report.json"
    run_import(path, "--report", str(report), "--valid-from", "2025-01-01")
    grids = Unit.objects.filter(kind="grid").order_by("code")
    assert [g.name for g in grids] == ["第1网格", "第2网格", "第3网格"]
    assert all(g.parent == community for g in grids)
    assert all(g.current_version().valid_from == datetime.date(2025, 1, 1) for g in grids)
    body = read_report(report)
    assert body["summary"]["created"] == 3 and body["summary"]["errors"] == 0


def test_reimporting_the_same_file_creates_no_versions(community, tmp_path):
    path = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(path)
    run_import(path)
    before = BoundaryVersion.objects.count()
    report = tmp_path / "again.json"
    run_import(path, "--report", str(report))
    assert BoundaryVersion.objects.count() == before
    assert read_report(report)["summary"]["unchanged"] == 3


def test_reimport_versions_only_what_changed(community, tmp_path):
    path = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(path)
    run_import(path, "--valid-from", "2025-01-01")
    rows = three_grids()
    # move the border between grids 1 and 2, and rename grid 3
    rows[0] = (rows[0][0], rows[0][1], rect(104.00, 30.60, 104.008, 30.61))
    rows[1] = (rows[1][0], rows[1][1], rect(104.008, 30.60, 104.014, 30.61))
    rows[2] = (rows[2][0], "第3网格（新）", rows[2][2])
    grids_frame(rows).to_file(path)
    run_import(path, "--valid-from", "2025-06-01")
    counts = {u.code: u.versions.count() for u in Unit.objects.filter(kind="grid")}
    assert counts == {f"{COMMUNITY}001": 2, f"{COMMUNITY}002": 2, f"{COMMUNITY}003": 2}
    third = Unit.objects.get(code=f"{COMMUNITY}003")
    assert third.name == "第3网格（新）"
    assert third.current_version().change == "attributes"
    first = Unit.objects.get(code=f"{COMMUNITY}001")
    old, new = first.versions.order_by("valid_from")
    assert old.valid_to == datetime.date(2025, 6, 1) and new.change == "adjusted"
    assert list(new.sources.all()) == [old]


def test_errors_import_nothing_and_are_reported_with_codes_and_location(community, tmp_path):
    rows = three_grids()
    rows[1] = (rows[1][0], rows[1][1], rect(104.006, 30.60, 104.014, 30.61))  # overlaps 1
    rows.append(("51019900100101", "坏编码", rect(104.0, 30.60, 104.001, 30.601)))
    rows.append((f"{COMMUNITY}009", "无主", rect(104.0, 30.60, 104.001, 30.601), "510199001099"))
    path = tmp_path / "bad.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    with pytest.raises(CommandError, match="nothing was imported"):
        run_import(path, "--report", str(report))
    assert not Unit.objects.filter(kind="grid").exists()
    body = read_report(report)
    by_type = body["summary"]["by_type"]
    assert by_type["malformed_code"] == 2  # too short; and not under its parent's code
    assert by_type["unknown_parent"] == 1
    assert body["summary"]["imported"] is False
    overlap = next(
        p
        for p in body["problems"]
        if p["type"] == "overlap" and set(p["codes"]) == {f"{COMMUNITY}001", f"{COMMUNITY}002"}
    )
    lon, lat = overlap["location"]
    assert 104.006 <= lon <= 104.007 and 30.60 <= lat <= 30.61
    assert overlap["area_m2"] == pytest.approx(0.001 * 96_000 * 0.01 * 111_000, rel=0.05)
    unknown = next(p for p in body["problems"] if p["type"] == "unknown_parent")
    assert "510199001099" in unknown["message"]


def test_gap_in_the_parent_is_reported(community, tmp_path):
    rows = three_grids()[:2]  # the east third of the community is not covered
    path = tmp_path / "gap.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    with pytest.raises(CommandError):
        run_import(path, "--report", str(report))
    gap = next(p for p in read_report(report)["problems"] if p["type"] == "gap")
    assert COMMUNITY in gap["codes"]
    assert 104.014 <= gap["location"][0] <= 104.02


def test_fix_repairs_and_says_what_changed(community, tmp_path):
    rows = three_grids()
    rows[1] = (rows[1][0], rows[1][1], rect(104.006, 30.60, 104.014, 30.61))  # overlap
    rows[2] = (rows[2][0], rows[2][1], rect(104.014, 30.60, 104.021, 30.61))  # sticks out
    path = tmp_path / "fixable.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    run_import(path, "--fix", "--report", str(report))
    body = read_report(report)
    assert body["summary"]["imported"] is True and body["summary"]["fixed"] >= 2
    assert all(p["change"] for p in body["problems"] if p["fixed"])
    call_command("check_coverage", "--kind", "grid", verbosity=0)  # clean now: no error


def test_force_imports_as_is_and_records_problems(community, tmp_path):
    rows = three_grids()
    rows[1] = (rows[1][0], rows[1][1], rect(104.006, 30.60, 104.014, 30.61))
    path = tmp_path / "forced.geojson"
    grids_frame(rows).to_file(path)
    run_import(path, "--force")
    second = Unit.objects.get(code=f"{COMMUNITY}002")
    assert [p["type"] for p in second.problems] == ["overlap"]
    assert shapely.equals(to_shapely(second.current_version().geom), rows[1][2])


def test_dry_run_writes_nothing(community, tmp_path):
    path = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(path)
    run_import(path, "--dry-run")
    assert not Unit.objects.filter(kind="grid").exists()


def bowtie():
    return shapely.Polygon(
        [(104.0, 30.60), (104.007, 30.61), (104.007, 30.60), (104.0, 30.61), (104.0, 30.60)]
    )


@pytest.mark.parametrize(
    ("geometry", "problem", "text"),
    [
        (bowtie(), "invalid_geometry", "Self-intersection"),
        (
            shapely.Polygon(
                [(104.0, 30.6), (104.007, 30.6), (104.007, 30.61), (104.0, 30.61), (104.0, 30.6)],
                [[(103.99, 30.605), (103.995, 30.605), (103.995, 30.606), (103.99, 30.605)]],
            ),
            "invalid_geometry",
            "Hole lies outside shell",
        ),
        (shapely.Polygon(), "empty_geometry", ""),
        (shapely.LineString([(104.0, 30.6), (104.007, 30.61)]), "not_polygonal", ""),
    ],
)
def test_bad_geometries_are_reported(community, tmp_path, geometry, problem, text):
    rows = three_grids()
    rows[0] = (rows[0][0], rows[0][1], geometry)
    path = tmp_path / "bad.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    with pytest.raises(CommandError):
        run_import(path, "--report", str(report))
    found = [p for p in read_report(report)["problems"] if p["type"] == problem]
    assert found and text in found[0]["message"]
    assert found[0]["codes"] == [f"{COMMUNITY}001"]
    assert not Unit.objects.filter(kind="grid").exists()


def test_fix_makes_a_self_intersecting_polygon_valid(community, tmp_path):
    rows = three_grids()
    rows[0] = (rows[0][0], rows[0][1], bowtie())
    path = tmp_path / "bowtie.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    run_import(path, "--fix", "--force", "--report", str(report))
    grid = Unit.objects.get(code=f"{COMMUNITY}001")
    assert to_shapely(grid.current_version().geom).is_valid
    fixed = [
        p for p in read_report(report)["problems"] if p["type"] == "invalid_geometry" and p["fixed"]
    ]
    assert fixed and "valid" in fixed[0]["change"]


def test_3d_geometries_are_flattened_with_a_warning(community, tmp_path):
    rows = [(c, n, shapely.force_3d(g, 12.0)) for c, n, g in three_grids()]
    path = tmp_path / "z.geojson"
    grids_frame(rows).to_file(path)
    report = tmp_path / "report.json"
    run_import(path, "--report", str(report))
    body = read_report(report)
    assert body["summary"]["by_type"]["has_z"] == 3
    assert body["summary"]["imported"] is True
    grid = Unit.objects.get(code=f"{COMMUNITY}001")
    assert not to_shapely(grid.current_version().geom).has_z


def test_gbk_shapefile_without_cpg(community, tmp_path):
    import pyogrio

    path = tmp_path / "grids_gbk.shp"
    pyogrio.write_dataframe(grids_frame(three_grids()), path, encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    run_import(path)
    assert sorted(Unit.objects.filter(kind="grid").values_list("name", flat=True)) == [
        "第1网格",
        "第2网格",
        "第3网格",
    ]


def test_gbk_shapefile_with_cpg(community, tmp_path):
    import pyogrio

    path = tmp_path / "grids_gbk.shp"
    pyogrio.write_dataframe(grids_frame(three_grids()), path, encoding="GBK")
    assert path.with_suffix(".cpg").exists()
    run_import(path)
    assert Unit.objects.get(code=f"{COMMUNITY}002").name == "第2网格"


def test_gcj02_input_is_converted_on_the_way_in(community, tmp_path):
    rows = []
    for code, name, geom in three_grids():
        shifted = shapely.transform(
            geom, lambda xy: __import__("numpy").column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))
        )
        rows.append((code, name, shifted))
    path = tmp_path / "gcj.geojson"
    grids_frame(rows).to_file(path)
    with pytest.raises(CommandError):  # read as WGS84 they spill out of the community
        run_import(path)
    run_import(path, "--crs", "gcj02")
    grid = Unit.objects.get(code=f"{COMMUNITY}001")
    assert shapely.equals_exact(
        to_shapely(grid.current_version().geom).normalize(),
        shapely.MultiPolygon([three_grids()[0][2]]).normalize(),
        1e-7,
    )


def test_unreadable_file_gives_a_clear_error(community, tmp_path):
    missing = tmp_path / "nope.geojson"
    with pytest.raises(CommandError, match="nope.geojson"):
        run_import(missing)
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    with pytest.raises(CommandError, match="junk.geojson"):
        run_import(junk)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_export_round_trips_through_import_without_change(community, tmp_path, fmt):
    source = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(source)
    run_import(source, "--valid-from", "2025-01-01")
    out = tmp_path / f"export.{fmt}"
    call_command("export_units", str(out), "--kind", "grid", "--format", fmt, verbosity=0)
    exported = gpd.read_file(out) if fmt != "csv" else None
    if exported is not None:
        assert set(exported["code"]) == {c for c, _n, _g in three_grids()}
        assert set(exported["parent"]) == {COMMUNITY}
        assert set(exported["valid_from"].astype(str)) == {"2025-01-01"}
    before = BoundaryVersion.objects.count()
    report = tmp_path / "report.json"
    run_import(out, "--report", str(report))
    assert BoundaryVersion.objects.count() == before
    assert read_report(report)["summary"]["unchanged"] == 3


def test_export_at_a_past_date_and_in_gcj02(community, tmp_path):
    source = tmp_path / "grids.geojson"
    grids_frame(three_grids()).to_file(source)
    run_import(source, "--valid-from", "2025-01-01")
    out = tmp_path / "old.geojson"
    call_command(
        "export_units",
        str(out),
        "--kind",
        "grid",
        "--format",
        "geojson",
        "--at",
        "2024-06-01",
        verbosity=0,
    )
    assert len(gpd.read_file(out)) == 0
    gcj = tmp_path / "gcj.geojson"
    call_command(
        "export_units",
        str(gcj),
        "--kind",
        "grid",
        "--format",
        "geojson",
        "--crs",
        "gcj02",
        verbosity=0,
    )
    x = gpd.read_file(gcj).geometry.iloc[0].bounds[0]
    assert x == pytest.approx(wgs84_to_gcj02(104.0, 30.6)[0], abs=1e-7)


def test_check_coverage_command(community, tmp_path, make_unit):
    make_unit("grid", f"{COMMUNITY}001", rect(104.00, 30.60, 104.011, 30.61), parent=community)
    make_unit("grid", f"{COMMUNITY}002", rect(104.010, 30.60, 104.02, 30.61), parent=community)
    report = tmp_path / "coverage.json"
    with pytest.raises(CommandError, match="error"):
        call_command("check_coverage", "--kind", "grid", "--report", str(report), verbosity=0)
    body = read_report(report)
    assert body["summary"]["by_type"] == {"overlap": 1}
    with pytest.raises(CommandError, match="no unit with code"):
        call_command("check_coverage", "--kind", "grid", "--parent", "510199009999")


@pytest.mark.django_db(transaction=True)
def test_a_killed_import_leaves_nothing_behind(community, tmp_path):
    """Kill -9 the import while it writes: the database holds none of its units."""
    # 10,000 grids under 100 communities: enough that writing takes a while
    street = community.parent
    from grids.services.boundaries import create_unit

    rows = []
    for c in range(100):
        code = f"510199001{c + 2:03d}"
        x0 = 104.0 + c * 0.01
        create_unit(
            kind="community",
            code=code,
            name=f"社区{c}",
            parent=street,
            geom=rect(x0, 30.55, x0 + 0.01, 30.56),
            valid_from=datetime.date(2024, 1, 1),
        )
        for g in range(100):
            gx = x0 + (g % 10) * 0.001
            gy = 30.55 + (g // 10) * 0.001
            rows.append(
                (f"{code}{g + 1:03d}", f"网格{g}", rect(gx, gy, gx + 0.001, gy + 0.001), code)
            )
    path = tmp_path / "many.geojson"
    grids_frame(rows).to_file(path)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gis.settings",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url_for_subprocess(),
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "import_units", str(path), "--kind", "grid"],
        cwd=BASE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until the command has written part of the units (its "writing" progress bar shows
    # a count above zero), then kill it
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        chunk = proc.stderr.read(1)
        if not chunk:
            break
        seen += chunk
        if re.search(r"\b([1-9]\d*)/\d+ ", seen):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    assert re.search(r"\b([1-9]\d*)/\d+ ", seen), seen[-500:]
    assert not Unit.objects.filter(kind="grid").exists()
    assert Unit.objects.filter(kind="community").count() == 101


def database_url_for_subprocess() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "postgresql":
        return (
            f"postgis://{settings_dict['USER']}:{settings_dict['PASSWORD']}@"
            f"{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}/"
            f"{settings_dict['NAME']}"
        )
    return f"spatialite:///{settings_dict['NAME']}"


def test_coordinates_out_of_range_are_refused_with_a_message(community, tmp_path):
    path = tmp_path / "far.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "code": f"{COMMUNITY}001",
                            "name": "远方",
                            "parent": COMMUNITY,
                        },
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [
                                    [204.0, 30.6],
                                    [204.01, 30.6],
                                    [204.01, 30.61],
                                    [204.0, 30.61],
                                    [204.0, 30.6],
                                ]
                            ],
                        },
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    with pytest.raises(CommandError) as raised:
        run_import(path, "--report", str(report))
    text = str(raised.value) + (report.read_text(encoding="utf-8") if report.exists() else "")
    assert "204" in text and ("range" in text or "lon/lat" in text)
    assert not Unit.objects.filter(kind="grid").exists()


def test_redrawing_a_grid_warns_about_its_micro_grids(small_territory, tmp_path):
    t = small_territory
    frame = gpd.GeoDataFrame(
        {
            "code": [t["grid1"].code, t["grid2"].code],
            "name": ["第1网格", "第2网格"],
            "parent": [COMMUNITY, COMMUNITY],
            "geometry": [rect(104.00, 30.60, 104.008, 30.61), rect(104.008, 30.60, 104.02, 30.61)],
        },
        crs="EPSG:4326",
    )
    path = tmp_path / "grids.geojson"
    frame.to_file(path)
    report = tmp_path / "report.json"
    run_import(path, "--report", str(report), "--valid-from", "2025-07-01")
    body = read_report(report)
    assert body["summary"]["imported"] is True  # warnings do not block
    by_type = body["summary"]["by_type"]
    assert by_type.get("children_outside_parent", 0) >= 1
    assert by_type.get("children_gap", 0) >= 1
    outside = next(p for p in body["problems"] if p["type"] == "children_outside_parent")
    assert t["micro11"].code in outside["codes"] or t["micro12"].code in outside["codes"]
