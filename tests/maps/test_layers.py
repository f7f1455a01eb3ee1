"""The map layer endpoints (maps.layers, maps.views.layer) on the test database."""

import datetime
import gzip
import json

import numpy as np
import pytest
import shapely
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client
from django.utils import timezone

from gis.crs import wgs84_to_gcj02
from grids.models import StaffAssignment, StaffMember, Unit, Workstation
from grids.services.boundaries import revise_unit
from grids.services.courtyards import merge_courtyards
from incidents.models import Category, Incident
from incidents.services.intake import Report, report_incident
from maps import geometry_cache, layers
from tests.conftest import COMMUNITY, D2024, rect

WEST = (104.005, 30.607)  # micro-grid 11 of grid 1
EAST = (104.015, 30.602)  # micro-grid 22 of grid 2


@pytest.fixture(autouse=True)
def fresh_outlines():
    from django.core.cache import caches

    caches["maps"].clear()
    caches["default"].clear()
    layers.forget()
    yield
    layers.forget()


@pytest.fixture
def territory(small_territory, seeded):
    return small_territory


def assign(unit, role, name="张三"):
    member = StaffMember.objects.create(name=name)
    StaffAssignment.objects.create(member=member, unit=unit, role=role, start=D2024)


def get(client, name, **params):
    response = client.get(f"/maps/layers/{name}.geojson", params)
    assert response.status_code == 200, response.content
    return response.json()


def by_code(collection) -> dict:
    return {f["properties"]["code"]: f for f in collection["features"]}


@pytest.fixture
def admin(client, territory, user_in):
    client.force_login(user_in(territory["district"], "district_admin", username="admin"))
    return client


@pytest.fixture
def chief(territory, user_in):
    client = Client()
    client.force_login(user_in(territory["grid1"], "grid_chief", username="chief1"))
    return client


def report(where, code="C0101", **fields):
    lon, lat = where
    fields.setdefault("reported_at", timezone.now())
    return report_incident(
        Report(
            lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol", **fields
        )
    )


# ---- units and staffing -------------------------------------------------------------------


def test_grid_staffing_bands_follow_chief_and_members_per_households(admin, territory):
    grid1, grid2 = territory["grid1"], territory["grid2"]  # 300 households each
    assign(grid1, "grid_chief", "李网格长")
    assign(grid2, "grid_chief", "王网格长")
    assign(grid2, "fulltime_member")
    grids = by_code(get(admin, "units", kind="grid"))
    one, two = grids[grid1.code]["properties"], grids[grid2.code]["properties"]
    assert one["chief"] == "李网格长" and one["members"] == 0
    assert one["members_per_100_households"] == 0 and one["band"] == "thin"
    assert two["members"] == 1 and two["members_per_100_households"] == pytest.approx(0.33)
    assert two["band"] == "ok"
    assert one["households"] == 300


def test_a_grid_without_a_chief_is_missing_and_microgrids_need_a_liaison(admin, territory):
    assign(territory["grid1"], "fulltime_member")
    assign(territory["micro11"], "microgrid_liaison", "赵联络员")
    assign(territory["micro12"], "microgrid_liaison")
    assign(territory["micro12"], "building_head")
    grids = by_code(get(admin, "units", kind="grid"))
    assert grids[territory["grid1"].code]["properties"]["band"] == "missing"
    micro = by_code(get(admin, "units", kind="microgrid"))
    assert len(micro) == 4
    assert micro[territory["micro11"].code]["properties"]["band"] == "thin"
    assert micro[territory["micro11"].code]["properties"]["liaison"] == "赵联络员"
    assert micro[territory["micro12"].code]["properties"]["band"] == "ok"
    assert micro[territory["micro21"].code]["properties"]["band"] == "missing"


def test_a_map_view_carries_each_units_summary_and_one_unit_comes_whole(admin, chief, territory):
    grid1, grid2 = territory["grid1"], territory["grid2"]
    assign(grid1, "grid_chief", "李网格长")
    full = by_code(get(admin, "units", kind="grid"))  # the download: everything
    assert "李网格长" in full[grid1.code]["properties"]["chief"]
    assert full[grid1.code]["properties"]["households"] == 300
    on_map = by_code(get(admin, "units", kind="grid", zoom=12))
    assert set(on_map) == set(full)
    assert all(f["id"] == code for code, f in full.items())
    for code, f in on_map.items():
        assert tuple(f["properties"]) == layers.UNIT_SUMMARY and "id" not in f
        assert f["properties"]["band"] == full[code]["properties"]["band"]
        assert f["properties"]["name"] == full[code]["properties"]["name"]
    boxed = by_code(get(admin, "units", kind="grid", zoom=15, bbox="103.99,30.59,104.03,30.62"))
    assert all(tuple(f["properties"]) == layers.UNIT_SUMMARY for f in boxed.values())
    # a popup opening: one unit, all its facts, whatever the box
    one = get(admin, "units", kind="grid", zoom=12, code=grid1.code, bbox="0,0,1,1")
    assert [f["properties"]["code"] for f in one["features"]] == [grid1.code]
    assert one["features"][0]["properties"] == full[grid1.code]["properties"]
    assert one["kind"] == "grid"
    # nothing outside the user's scope, or of another kind
    assert get(chief, "units", kind="grid", zoom=12, code=grid2.code)["features"] == []
    assert get(admin, "units", kind="microgrid", zoom=12, code=grid1.code)["features"] == []
    bad = admin.get("/maps/layers/units.geojson", {"kind": "grid", "code": "1' OR '1"})
    assert bad.status_code == 400 and "code=" in bad.json()["error"]


def test_a_pages_first_answer_is_kept_until_units_or_staff_change(
    admin, chief, territory, monkeypatch
):
    """The summary of every unit in scope (a page's first request) is kept per scope and
    answered again without reading units and staff — until any write to them, by any means,
    or another scope asks."""
    grid1, grid2 = territory["grid1"], territory["grid2"]
    assign(grid1, "grid_chief", "李网格长")
    first = get(admin, "units", kind="grid", zoom=12)
    assert by_code(first)[grid1.code]["properties"]["band"] == "thin"
    reads = []
    real = layers._unit_rows
    monkeypatch.setattr(layers, "_unit_rows", lambda *a: reads.append(1) or real(*a))
    selections = []
    real_selected = layers._selected
    monkeypatch.setattr(layers, "_selected", lambda *a: selections.append(1) or real_selected(*a))
    assert get(admin, "units", kind="grid", zoom=12) == first
    assert reads == [] and selections == []  # kept, found without reading the scope's units
    layers.forget()
    assert get(admin, "units", kind="grid", zoom=12) == first  # the same as made afresh
    assert len(reads) == 1
    # a box, one unit or the download are read afresh each time
    get(admin, "units", kind="grid", zoom=12, bbox="103.99,30.59,104.03,30.62")
    get(admin, "units", kind="grid", zoom=12, code=grid1.code)
    get(admin, "units", kind="grid")
    assert len(reads) == 4
    # another scope: its own answer
    assert set(by_code(get(chief, "units", kind="grid", zoom=12))) == {grid1.code}
    assert set(by_code(get(admin, "units", kind="grid", zoom=12))) == {grid1.code, grid2.code}
    # writes made without the ORM's signals change the answer at once
    StaffAssignment.objects.filter(unit=grid1).update(end=D2024)
    assert (
        by_code(get(admin, "units", kind="grid", zoom=12))[grid1.code]["properties"]["band"]
        == "missing"
    )
    Unit.objects.filter(pk=grid2.pk).update(name="东网格")
    assert (
        by_code(get(admin, "units", kind="grid", zoom=12))[grid2.code]["properties"]["name"]
        == "东网格"
    )
    Unit.objects.filter(pk=grid2.pk).update(retired_on=D2024)
    assert set(by_code(get(admin, "units", kind="grid", zoom=12))) == {grid1.code}


def test_a_kept_first_answer_follows_whose_staff_member_a_login_is(chief, territory):
    """A login moved to another staff member (no unit or assignment written) has that
    member's scope at once."""
    grid2 = territory["grid2"]
    assert set(by_code(get(chief, "units", kind="grid", zoom=12))) == {territory["grid1"].code}
    user = User.objects.get(username="chief1")
    other = StaffMember.objects.create(name="王网格长")
    StaffAssignment.objects.create(member=other, unit=grid2, role="grid_chief", start=D2024)
    get(chief, "units", kind="grid", zoom=12)  # kept again after that write
    StaffMember.objects.filter(user=user).update(user=None)
    StaffMember.objects.filter(pk=other.pk).update(user=user)
    assert set(by_code(get(chief, "units", kind="grid", zoom=12))) == {grid2.code}


def test_kept_answers_stay_within_their_weight_least_recently_used_dropped_first():
    recent = layers._Recent(10)
    recent.put("a", "A", 4)
    recent.put("b", "B", 4)
    assert recent.get("a") == "A"  # now the most recent
    recent.put("c", "C", 4)  # 12 > 10: b goes
    assert recent.get("b") is None and recent.get("a") == "A" and recent.get("c") == "C"
    recent.put("a", "A2", 6)  # replaced: 10
    assert recent.get("a") == "A2" and recent.get("c") == "C"
    recent.put("huge", "H", 11)  # heavier than everything: not kept, nothing dropped
    assert recent.get("huge") is None and recent.get("a") == "A2" and recent.get("c") == "C"
    recent.clear()
    assert recent.get("a") is None


def test_an_answer_heavier_than_the_budget_is_made_each_time(admin, territory, monkeypatch):
    monkeypatch.setattr(layers, "_summaries", layers._Recent(10))  # smaller than any answer
    reads = []
    real = layers._unit_rows
    monkeypatch.setattr(layers, "_unit_rows", lambda *a: reads.append(1) or real(*a))
    first = get(admin, "units", kind="grid", zoom=12)
    assert get(admin, "units", kind="grid", zoom=12) == first
    assert len(reads) == 2


def test_the_units_answer_is_sent_compressed_to_clients_that_take_gzip(admin, territory):
    plain = admin.get("/maps/layers/units.geojson", {"kind": "grid", "zoom": 12})
    assert "Content-Encoding" not in plain and "Accept-Encoding" in plain["Vary"]
    for _ in range(2):  # made, then kept
        packed = admin.get(
            "/maps/layers/units.geojson",
            {"kind": "grid", "zoom": 12},
            HTTP_ACCEPT_ENCODING="br, gzip;q=0.9",
        )
        assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
        assert packed["Content-Type"] == "application/geo+json"
        assert gzip.decompress(packed.content) == plain.content
    download = admin.get(
        "/maps/layers/units.geojson",
        {"kind": "grid", "download": 1},
        HTTP_ACCEPT_ENCODING="gzip",
    )
    assert download["Content-Disposition"] == 'attachment; filename="units.geojson"'
    assert json.loads(gzip.decompress(download.content))["features"]


def test_a_map_asking_for_a_text_sequence_gets_the_same_features_as_one(admin, territory):
    """RFC 8142: the collection's members first (no features), then one feature per text,
    each after an RS and before a line feed; compressed or not; other Accept headers get a
    FeatureCollection."""
    params = {"kind": "grid", "zoom": 12}
    whole = admin.get("/maps/layers/units.geojson", params)
    assert whole["Content-Type"] == "application/geo+json"
    seq_type = "application/geo+json-seq"
    accept = f"{seq_type}, application/geo+json;q=0.9, application/json;q=0.8"
    for encoding in ("", "gzip"):
        response = admin.get(
            "/maps/layers/units.geojson",
            params,
            HTTP_ACCEPT=accept,
            HTTP_ACCEPT_ENCODING=encoding,
        )
        assert response["Content-Type"] == seq_type
        assert "Accept" in response["Vary"]
        body = gzip.decompress(response.content) if encoding else response.content
        text = body.decode("ascii")  # other characters as \u escapes
        assert "\\u7f51\\u683c" in text  # 网格, in the grids' names
        assert text.startswith("\x1e") and text.endswith("\n")
        head, *features = [json.loads(t) for t in text.split("\x1e")[1:]]
        assert all(t.endswith("\n") for t in text.split("\x1e")[1:])
        assert head == {"type": "FeatureCollection", "kind": "grid", "features": []}
        assert features == whole.json()["features"] and len(features) == 2
    for other in ("application/json", "*/*", "application/geo+json", "text/html"):
        response = admin.get("/maps/layers/units.geojson", params, HTTP_ACCEPT=other)
        assert response["Content-Type"] == "application/geo+json"
        assert response.content == whole.content
    # by address, whatever the Accept header (a preload's is */*)
    sequence = admin.get("/maps/layers/units.geojson", {**params}, HTTP_ACCEPT=accept).content
    for other in ("*/*", "application/geo+json", ""):
        response = admin.get(
            "/maps/layers/units.geojson", {**params, "format": "geojson-seq"}, HTTP_ACCEPT=other
        )
        assert response["Content-Type"] == seq_type
        assert response.content == sequence


def test_a_kept_first_answer_follows_the_staff_day_and_the_setting(
    admin, territory, settings, monkeypatch
):
    grid1 = territory["grid1"]
    member = StaffMember.objects.create(name="李网格长")
    StaffAssignment.objects.create(
        member=member, unit=grid1, role="grid_chief", start=D2024, end=datetime.date(2030, 6, 1)
    )
    StaffAssignment.objects.create(member=member, unit=grid1, role="fulltime_member", start=D2024)

    def band():
        return by_code(get(admin, "units", kind="grid", zoom=12))[grid1.code]["properties"]["band"]

    assert band() == "ok"  # 1 member per 300 households: 0.33 per 100
    settings.WEIGE_MEMBERS_PER_100_HOUSEHOLDS = 1
    assert band() == "thin"
    monkeypatch.setattr(layers.timezone, "localdate", lambda: datetime.date(2030, 6, 2))
    assert band() == "missing"  # the chief's assignment has ended


def test_units_are_limited_to_the_users_scope_and_the_box(chief, admin, territory):
    assert set(by_code(get(chief, "units", kind="microgrid"))) == {
        territory["micro11"].code,
        territory["micro12"].code,
    }
    east_box = "104.012,30.600,104.02,30.61"
    assert set(by_code(get(admin, "units", kind="grid", bbox=east_box))) == {
        territory["grid2"].code
    }
    assert get(chief, "units", kind="grid", bbox=east_box)["features"] == []


@pytest.mark.parametrize("kind", ["grid", "microgrid", "courtyard"])
def test_many_units_are_read_through_the_scope_with_the_same_answer(
    admin, chief, territory, monkeypatch, kind
):
    """Above MANY_UNITS units a layer reads their rows and staff through the scoped
    queryset instead of a list of ids: the answers are the same, for the whole scope and for
    a box, and a chief still sees only their units."""
    assign(territory["grid1"], "grid_chief", "李网格长")
    assign(territory["grid2"], "fulltime_member", "钱网格员")
    assign(territory["micro11"], "microgrid_liaison", "赵联络员")
    assign(territory["micro21"], "building_head", "孙楼栋长")
    name = "courtyards" if kind == "courtyard" else "units"
    east_box = "104.012,30.600,104.02,30.61"
    answers = {}
    for many in (1000, 0):
        monkeypatch.setattr(layers, "MANY_UNITS", many)
        answers[many] = [
            get(admin, name, kind=kind),
            get(admin, name, kind=kind, bbox=east_box),
            get(chief, name, kind=kind),
        ]
    assert answers[0] == answers[1000]
    if kind != "courtyard":
        assert answers[0][0]["features"] and answers[0][2]["features"]
        assert len(answers[0][2]["features"]) < len(answers[0][0]["features"])


def test_a_unit_retired_between_the_two_reads_is_left_out(admin, territory, monkeypatch):
    """Through the scoped queryset (MANY_UNITS), a unit retired after the layer has picked
    its outline but before its row is read is left out of the answer, not a server error."""
    monkeypatch.setattr(layers, "MANY_UNITS", 0)
    picked_then = layers._selected

    def retire_after_picking(*args, **kwargs):
        found = picked_then(*args, **kwargs)
        Unit.objects.filter(pk=territory["grid1"].pk).update(retired_on=timezone.localdate())
        return found

    monkeypatch.setattr(layers, "_selected", retire_after_picking)
    assert set(by_code(get(admin, "units", kind="grid"))) == {territory["grid2"].code}


def test_simplified_neighbours_still_share_their_edge(admin, make_unit, territory):
    """Two micro-grids split by a wiggly line: at a district zoom the line is simplified
    once, so both outlines carry exactly the same vertices along it."""
    parent = territory["community"]
    grid = make_unit("grid", f"{COMMUNITY}009", rect(104.03, 30.60, 104.05, 30.62), parent=parent)
    wiggle = [(104.04 + (0.00002 if i % 2 else -0.00002), 30.60 + i * 0.0002) for i in range(101)]
    west = shapely.Polygon([(104.03, 30.60), *wiggle, (104.03, 30.62)])
    east = shapely.Polygon([(104.05, 30.60), (104.05, 30.62), *reversed(wiggle)])
    for n, geom in enumerate((west, east), start=1):
        make_unit("microgrid", f"{grid.code}{n:02d}", geom.normalize(), parent=grid)
    coarse = by_code(get(admin, "units", kind="microgrid", zoom=11))
    fine = by_code(get(admin, "units", kind="microgrid"))
    shapes = {code: shapely.geometry.shape(f["geometry"]) for code, f in coarse.items()}
    a, b = shapes[f"{grid.code}01"], shapes[f"{grid.code}02"]
    full = shapely.geometry.shape(fine[f"{grid.code}01"]["geometry"])
    assert shapely.get_num_coordinates(a) < shapely.get_num_coordinates(full) / 5
    shared_a = {tuple(c) for c in shapely.get_coordinates(a) if 104.0399 < c[0] < 104.0401}
    shared_b = {tuple(c) for c in shapely.get_coordinates(b) if 104.0399 < c[0] < 104.0401}
    assert shared_a and shared_a == shared_b
    assert a.intersection(b).area < 1e-12  # no overlap on screen


@pytest.mark.parametrize("band", geometry_cache.ZOOM_BANDS)
def test_outline_coordinates_are_rounded_to_a_third_of_a_pixel_at_most(
    admin, make_unit, territory, band
):
    """The fewest decimals (at least 4) whose rounding moves a vertex by at most a third of
    the band's tolerance (a pixel at its zoom); the answer's coordinates carry no more."""
    decimals = geometry_cache.decimals_for(band)
    pixel = geometry_cache.tolerance(band)
    assert 0.5 * 10**-decimals <= pixel / 3
    assert decimals == 4 or 0.5 * 10 ** -(decimals - 1) > pixel / 3
    corners = (104.0312345678, 30.6012345678, 104.0387654321, 30.6087654321)
    fine = make_unit("grid", f"{COMMUNITY}009", rect(*corners), parent=territory["community"])
    answer = by_code(get(admin, "units", kind="grid", zoom=band))
    served = shapely.get_coordinates(shapely.geometry.shape(answer[fine.code]["geometry"]))
    stored = shapely.get_coordinates(rect(*corners))
    assert np.array_equal(np.round(served, decimals), served)  # no more decimals
    assert np.abs(np.sort(served, axis=0) - np.sort(stored, axis=0)).max() <= 0.5 * 10**-decimals
    assert not np.array_equal(np.round(served, decimals - 1), served)  # not fewer either
    full = by_code(get(admin, "units", kind="grid"))  # the download: as stored (7 decimals)
    kept = shapely.get_coordinates(shapely.geometry.shape(full[fine.code]["geometry"]))
    assert np.abs(np.sort(kept, axis=0) - np.sort(stored, axis=0)).max() <= 0.5e-7


def test_outlines_prepared_by_another_release_are_not_served(territory, monkeypatch):
    """The shared cache's key carries OUTLINES_FORMAT: a release that changes how outlines
    are prepared raises it and prepares them again instead of reading the old ones."""
    prepared = []
    real = geometry_cache._prepare
    monkeypatch.setattr(geometry_cache, "_prepare", lambda *a: prepared.append(a[0]) or real(*a))
    first = geometry_cache.outlines("grid")
    geometry_cache.forget()  # a new server process: only the shared cache is left
    assert geometry_cache.outlines("grid").geojson == first.geojson
    assert prepared == ["grid"]  # read from the shared cache
    geometry_cache.forget()
    monkeypatch.setattr(geometry_cache, "OUTLINES_FORMAT", geometry_cache.OUTLINES_FORMAT + 1)
    geometry_cache.outlines("grid")
    assert prepared == ["grid", "grid"]


def test_a_new_boundary_version_is_served_at_once(admin, territory):
    micro = territory["micro11"]
    before = shapely.geometry.shape(
        by_code(get(admin, "units", kind="microgrid"))[micro.code]["geometry"]
    )
    revise_unit(
        micro,
        valid_from=datetime.date(2025, 1, 1),
        geom=rect(104.00, 30.605, 104.008, 30.61),
    )
    after = shapely.geometry.shape(
        by_code(get(admin, "units", kind="microgrid"))[micro.code]["geometry"]
    )
    assert before.bounds[2] == pytest.approx(104.01)
    assert after.bounds[2] == pytest.approx(104.008)


def test_a_version_dated_from_tomorrow_is_drawn_from_tomorrow(admin, territory):
    micro = territory["micro11"]
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    revise_unit(micro, valid_from=tomorrow, geom=rect(104.00, 30.605, 104.006, 30.61))
    today = shapely.geometry.shape(
        by_code(get(admin, "units", kind="microgrid"))[micro.code]["geometry"]
    )
    assert today.bounds[2] == pytest.approx(104.01)  # still today's outline
    assert geometry_cache.boundary_state("microgrid").startswith(f"{timezone.localdate():%Y%m%d}-")


# ---- problems and courtyards ----------------------------------------------------------


def test_a_coverage_gap_is_a_problem_point_and_marks_its_units(admin, chief, make_unit, territory):
    # micro-grids of a new grid leave its eastern strip uncovered
    parent = territory["community"]
    grid = make_unit("grid", f"{COMMUNITY}008", rect(104.03, 30.60, 104.04, 30.61), parent=parent)
    make_unit("microgrid", f"{grid.code}01", rect(104.03, 30.60, 104.038, 30.61), parent=grid)
    problems = get(admin, "problems")["features"]
    gaps = [f for f in problems if f["properties"]["type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["properties"]["severity"] == "error"
    lon, lat = gaps[0]["geometry"]["coordinates"]
    assert 104.038 <= lon <= 104.04 and 30.60 <= lat <= 30.61
    assert (
        f"{grid.code}01" in gaps[0]["properties"]["codes"]
        or grid.code in gaps[0]["properties"]["codes"]
    )
    micro = by_code(get(admin, "units", kind="microgrid"))
    assert micro[territory["micro11"].code]["properties"]["problems"] == 0
    assert get(chief, "problems")["features"] == []  # not in the chief's grid


def test_a_problem_shared_with_units_outside_the_scope_keeps_their_names_out(
    admin, chief, territory
):
    # grid 2 is redrawn over a strip of grid 1: an overlap between the chief's grid and one
    # the chief may not see
    revise_unit(
        territory["grid2"],
        valid_from=datetime.date(2025, 1, 1),
        geom=rect(104.008, 30.60, 104.02, 30.61),
    )
    grid1, grid2 = territory["grid1"].code, territory["grid2"].code
    overlap = [
        f["properties"]
        for f in get(admin, "problems")["features"]
        if f["properties"]["type"] == "overlap" and grid1 in f["properties"]["codes"]
    ]
    assert overlap and grid2 in overlap[0]["message"]
    seen = [
        f["properties"]
        for f in get(chief, "problems")["features"]
        if f["properties"]["type"] == "overlap"
    ]
    assert seen and seen[0]["codes"] == [grid1]
    assert grid2 not in json.dumps(seen, ensure_ascii=False)
    assert seen[0]["message"] == "also involves units outside your scope"


def test_merged_courtyards_are_one_outline_with_their_former_compounds(admin, make_unit, territory):
    parent = territory["community"]
    a = make_unit(
        "courtyard",
        f"{COMMUNITY}Y001",
        rect(104.001, 30.601, 104.002, 30.602),
        parent=parent,
        name="鞋厂院",
    )
    b = make_unit(
        "courtyard",
        f"{COMMUNITY}Y002",
        rect(104.002, 30.601, 104.003, 30.602),
        parent=parent,
        name="锅炉厂院",
    )
    make_unit(
        "courtyard",
        f"{COMMUNITY}Y003",
        rect(104.005, 30.601, 104.006, 30.602),
        parent=parent,
        name="法院院",
    )
    merge_courtyards(
        [a, b], code=f"{COMMUNITY}Y009", name="大花园", valid_from=datetime.date(2025, 5, 1)
    )
    features = get(admin, "courtyards")["features"]
    current = [f for f in features if not f["properties"]["former"]]
    former = [f for f in features if f["properties"]["former"]]
    assert {f["properties"]["name"] for f in current} == {"大花园", "法院院"}
    merged = next(f for f in current if f["properties"]["name"] == "大花园")
    assert merged["properties"]["merged"] is True
    assert shapely.geometry.shape(merged["geometry"]).area == pytest.approx(2e-6, rel=1e-3)
    assert {f["properties"]["name"] for f in former} == {"鞋厂院", "锅炉厂院"}
    assert all(f["properties"]["merged_into"] == "大花园" for f in former)


# ---- workstations -------------------------------------------------------------------------


def test_workstation_popup_facts(admin, chief, territory):
    station = Workstation.objects.create(
        name="花园工作站", location="POINT(104.005 30.605)", pilot=True, address="花园路1号"
    )
    station.units.add(territory["grid1"])
    other = Workstation.objects.create(name="河畔工作站", location="POINT(104.015 30.605)")
    other.units.add(territory["grid2"])
    assign(territory["grid1"], "grid_chief", "李网格长")
    assign(territory["grid1"], "fulltime_member", "钱网格员")
    late = report(WEST)
    Incident.objects.filter(pk=late.pk).update(
        deadline=timezone.now() - datetime.timedelta(hours=2)
    )
    report(WEST)
    report(EAST)
    found = {f["properties"]["name"]: f for f in get(admin, "workstations")["features"]}
    garden = found["花园工作站"]["properties"]
    assert garden["pilot"] is True and garden["open"] == 2 and garden["overdue"] == 1
    assert [u["code"] for u in garden["units"]] == [territory["grid1"].code]
    # the chief fixture's login is a second grid chief of grid 1
    assert {s["role"]: s["count"] for s in garden["staff"]} == {
        "grid chief": 2,
        "full-time grid member": 1,
    }
    assert garden["on_time_closure_30d"] == 0.0  # one overdue, none closed
    assert found["河畔工作站"]["properties"]["open"] == 1
    assert found["花园工作站"]["geometry"]["coordinates"] == [104.005, 30.605]
    assert set(f["properties"]["name"] for f in get(chief, "workstations")["features"]) == {
        "花园工作站"
    }
    # a station serving grids of two chiefs shows each chief only their own units and staff
    station.units.add(territory["grid2"])
    assign(territory["grid2"], "grid_chief", "赵网格长")
    caches["maps"].clear()
    mine = get(chief, "workstations")["features"]
    assert [u["code"] for u in mine[0]["properties"]["units"]] == [territory["grid1"].code]
    assert "赵网格长" not in json.dumps(mine, ensure_ascii=False)
    both = {
        f["properties"]["name"]: f["properties"] for f in get(admin, "workstations")["features"]
    }["花园工作站"]
    assert [u["code"] for u in both["units"]] == [territory["grid1"].code, territory["grid2"].code]
    station.units.remove(territory["grid2"])
    caches["maps"].clear()
    # on the map: name and pilot flag per station; its facts come with ?id= on opening
    box = {"bbox": "103.99,30.59,104.03,30.62", "zoom": 15}
    on_map = get(admin, "workstations", **box)["features"]
    summaries = {f["properties"]["name"]: f for f in on_map}
    assert {name: f["properties"]["pilot"] for name, f in summaries.items()} == {
        "花园工作站": True,
        "河畔工作站": False,
    }
    assert all(tuple(f["properties"]) == layers.WORKSTATION_SUMMARY for f in on_map)
    assert summaries["花园工作站"]["geometry"]["coordinates"] == [104.005, 30.605]
    one = get(admin, "workstations", id=station.pk, **box)["features"]
    assert [f["properties"]["name"] for f in one] == ["花园工作站"]
    assert one[0]["properties"] == garden
    # another grid's chief asking for a station outside their units gets nothing
    assert get(chief, "workstations", id=other.pk)["features"] == []
    bad = admin.get("/maps/layers/workstations.geojson", {"id": "1 OR 1=1"})
    assert bad.status_code == 400 and "id=" in bad.json()["error"]
    served = by_code(get(admin, "workstation_units"))
    assert served[territory["grid1"].code]["properties"]["pilot"] is True
    assert served[territory["grid2"].code]["properties"]["pilot"] is False


# ---- incidents ----------------------------------------------------------------------------


def test_incidents_cluster_at_low_zoom_and_split_at_high_zoom(admin, territory):
    for i in range(5):
        report((104.005 + i * 0.0001, 30.607))
    report(EAST, "E0404")
    low = get(admin, "incidents", zoom=12)
    assert low["total"] == 6
    clusters = [f for f in low["features"] if f["properties"]["cluster"]]
    assert [c["properties"]["count"] for c in clusters] == [5]
    high = get(admin, "incidents", zoom=18)
    assert len(high["features"]) == 6
    assert not any(f["properties"]["cluster"] for f in high["features"])
    single = next(f for f in high["features"] if f["properties"]["category"].startswith("E0404"))
    assert single["properties"]["url"] == f"/incidents/{single['id']}/"
    assert single["properties"]["police_relevant"] is True
    # the whole layer (the download: no box, no zoom) has every incident on its own
    whole = get(admin, "incidents", download=1)
    assert whole["total"] == 6 and len(whole["features"]) == 6
    assert not any(f["properties"]["cluster"] for f in whole["features"])


def test_incident_layers_apply_the_list_filters_and_the_scope(admin, chief, territory):
    late = report(WEST)
    Incident.objects.filter(pk=late.pk).update(
        deadline=timezone.now() - datetime.timedelta(hours=1)
    )
    report(WEST, "E0404")
    report(EAST)
    every = get(admin, "incidents", zoom=18)["features"]
    assert len(every) == 3
    overdue = get(admin, "incidents", zoom=18, overdue="1")["features"]
    assert [f["id"] for f in overdue] == [late.pk] and overdue[0]["properties"]["overdue"]
    assert len(get(admin, "incidents", zoom=18, police_relevant="1")["features"]) == 1
    assert len(get(chief, "incidents", zoom=18)["features"]) == 2  # grid 1 only
    heat = admin.get("/maps/layers/incident_heat.geojson", {"zoom": 15}).json()
    assert heat["total"] == 3 and sum(p[2] for p in heat["points"]) == 3
    density = by_code(get(admin, "incident_density", zoom=13))
    assert density[territory["grid1"].code]["properties"]["open"] == 2
    assert density[territory["grid2"].code]["properties"]["open"] == 1
    assert get(admin, "incident_density", category="E0404")["max_open"] == 1


# ---- the endpoint -------------------------------------------------------------------------


def test_the_endpoint_refuses_anonymous_unknown_and_bad_parameters(admin, territory):
    assert Client().get("/maps/layers/units.geojson").status_code == 403
    assert admin.get("/maps/layers/secrets.geojson").status_code == 404
    for params, word in [
        ({"bbox": "1,2,3"}, "bbox="),
        ({"bbox": "104.1,30,104,31"}, "bbox="),
        ({"zoom": "far"}, "zoom="),
        ({"kind": "street"}, "kind="),
    ]:
        response = admin.get("/maps/layers/units.geojson", params)
        assert response.status_code == 400 and word in response.json()["error"]
    response = admin.get("/maps/layers/incidents.geojson", {"state": "sleeping"})
    assert response.status_code == 400 and "state=" in response.json()["error"]


def test_a_box_beyond_the_globe_is_kept_to_it(admin, territory):
    report(WEST)
    # a browser zoomed far out asks for more than the globe; absurd sizes must not reach GEOS
    for bbox in ("-200,-100,200,100", "0,0,1e308,1e308", "-1e308,-1e308,1e308,1e308"):
        for name in ("incidents", "incident_heat", "units", "problems", "workstations"):
            response = admin.get(f"/maps/layers/{name}.geojson", {"bbox": bbox, "zoom": 3})
            assert response.status_code == 200, (name, bbox)
        assert get(admin, "incidents", bbox=bbox, zoom=3)["total"] == 1
    assert layers.parse_view({"bbox": "-200,-100,1e308,100"}, "wgs84").box == (-180, -90, 180, 90)


def test_download_is_an_attachment_with_the_whole_layer(admin, territory):
    response = admin.get("/maps/layers/units.geojson", {"kind": "microgrid", "download": "1"})
    assert response["Content-Type"] == "application/geo+json"
    assert response["Content-Disposition"] == 'attachment; filename="units.geojson"'
    assert len(json.loads(response.content)["features"]) == 4


def test_with_a_gcj02_basemap_every_layer_is_shifted(admin, territory, settings):
    report(WEST)
    plain = by_code(get(admin, "units", kind="grid"))[territory["grid1"].code]
    point = get(admin, "incidents", zoom=18)["features"][0]["geometry"]["coordinates"]
    settings.WEIGE_BASEMAP = "amap"
    shifted = by_code(get(admin, "units", kind="grid"))[territory["grid1"].code]
    x0, y0, *_ = shapely.geometry.shape(plain["geometry"]).bounds
    sx0, sy0, *_ = shapely.geometry.shape(shifted["geometry"]).bounds
    ex, ey = wgs84_to_gcj02(x0, y0)
    assert (sx0, sy0) == (pytest.approx(ex, abs=1e-6), pytest.approx(ey, abs=1e-6))
    assert abs(sx0 - x0) > 0.001  # a few hundred metres
    px, py = wgs84_to_gcj02(*point)
    bbox = f"{px - 0.001},{py - 0.001},{px + 0.001},{py + 0.001}"  # a GCJ-02 box
    moved = get(admin, "incidents", zoom=18, bbox=bbox)["features"]
    assert len(moved) == 1
    assert moved[0]["geometry"]["coordinates"] == [
        pytest.approx(px, abs=1e-6),
        pytest.approx(py, abs=1e-6),
    ]


@pytest.mark.parametrize(
    "lon_range, lat_range",
    [((103.6, 104.5), (30.2, 30.9)), ((-3.0, 104.5), (-1.0, 30.8))],
    ids=["a city", "across the zero lines"],
)
def test_screen_cells_group_exactly_the_points_of_one_cell(lon_range, lat_range):
    """Clustering's cells against a plain row-wise grouping of the same points, cells
    spread over many rows and columns."""
    rng = np.random.default_rng(7)
    lon = rng.uniform(*lon_range, 20_000)
    lat = rng.uniform(*lat_range, 20_000)
    size = 0.0037
    index, cells = layers._cells(lon, lat, size)
    expected_keys = np.stack([np.floor(lon / size), np.floor(lat / size)], axis=1)
    expected_cells, expected_index = np.unique(expected_keys, axis=0, return_inverse=True)
    assert len(cells) == len(expected_cells)
    # the same partition of the points: cell i of ours is cell j of the plain grouping
    pairs = set(zip(index.tolist(), expected_index.reshape(-1).tolist(), strict=True))
    assert len(pairs) == len(cells)
