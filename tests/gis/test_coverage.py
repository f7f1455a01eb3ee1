"""Framework-free tests of gis.coverage (run with ``-p no:django``).

Every test builds small quads in lon/lat near Chengdu (104.06, 30.66) from local metre
offsets, so expected areas are known in m² independently of the code under test.
"""

import json

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon

from gis.coverage import (
    CoverageFeature,
    CoverageReport,
    check_coverage,
    check_overlaps_pairwise,
    repair_coverage,
)
from gis.geometry import geodesic_area_perimeter


@pytest.fixture(autouse=True)
def english():
    """No-op stand-in for tests/conftest.py's Django-only autouse ``english`` fixture.

    These tests are framework-free (run with ``-p no:django``), where the ``settings`` fixture
    that one needs does not exist.
    """
    yield


LON0, LAT0 = 104.06, 30.66
_GEOD = Geod(ellps="GRS80")
M_PER_DEG_LON = _GEOD.inv(LON0, LAT0, LON0 + 0.001, LAT0)[2] / 0.001
M_PER_DEG_LAT = _GEOD.inv(LON0, LAT0, LON0, LAT0 + 0.001)[2] / 0.001

PARENT = "510199001001"


def pt(x: float, y: float) -> tuple[float, float]:
    """Local metres east/north of the Chengdu origin -> (lon, lat)."""
    return LON0 + x / M_PER_DEG_LON, LAT0 + y / M_PER_DEG_LAT


def to_metres(lon: float, lat: float) -> tuple[float, float]:
    return (lon - LON0) * M_PER_DEG_LON, (lat - LAT0) * M_PER_DEG_LAT


def quad(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """An axis-aligned quad given in local metres, returned in lon/lat."""
    return Polygon([pt(x0, y0), pt(x1, y0), pt(x1, y1), pt(x0, y1)])


def partition(nx: int = 3, ny: int = 3, size: float = 100.0, parent: str = PARENT):
    """An exact nx x ny partition of a parent square; codes ``<parent>001``..."""
    features = []
    for row in range(ny):
        for col in range(nx):
            code = f"{parent}{row * nx + col + 1:03d}"
            geom = quad(col * size, row * size, (col + 1) * size, (row + 1) * size)
            features.append(CoverageFeature(code, geom, parent))
    return features, {parent: quad(0, 0, nx * size, ny * size)}


def of_type(report: CoverageReport, type_: str):
    return [p for p in report.problems if p.type == type_]


def in_metres(location) -> tuple[float, float]:
    return to_metres(*location)


# --- check_coverage ------------------------------------------------------------------------


def test_clean_3x3_partition_has_no_problems():
    features, parents = partition()
    report = check_coverage(features, parents)
    assert report.problems == []
    assert report.features == 9
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.counts() == {}


def test_vertex_mismatch_without_overlap_is_clean():
    # A's east edge has no vertex where B and C meet (a T-junction): the GEOS coverage
    # validator flags the edges, but nothing overlaps and nothing is uncovered.
    features = [
        ("A", quad(0, 0, 100, 100), "P"),
        ("B", quad(100, 0, 200, 50), "P"),
        ("C", quad(100, 50, 200, 100), "P"),
    ]
    parents = {"P": quad(0, 0, 200, 100)}
    assert not shapely.coverage_is_valid([g for _, g, _ in features])
    assert check_coverage(features, parents).problems == []


def test_overlapping_pair_reported_once_with_area():
    features = [("A", quad(0, 0, 160, 100), "P"), ("B", quad(140, 0, 300, 100), "P")]
    parents = {"P": quad(0, 0, 300, 100)}
    report = check_coverage(features, parents)
    assert report.counts() == {"overlap": 1}
    (problem,) = report.problems
    assert problem.codes == ["A", "B"]
    assert problem.severity == "error"
    assert problem.area_m2 == pytest.approx(20 * 100, rel=0.01)
    x, y = in_metres(problem.location)
    assert 140 < x < 160 and 0 < y < 100
    assert "A and B overlap" in problem.message and "P" in problem.message


def test_overlap_codes_sorted_and_reported_once_regardless_of_input_order():
    features = [("B", quad(140, 0, 300, 100), "P"), ("A", quad(0, 0, 160, 100), "P")]
    report = check_coverage(features, {"P": quad(0, 0, 300, 100)})
    assert [p.codes for p in report.problems] == [["A", "B"]]


def test_gap_inside_parent_with_location_and_bordering_children():
    features, parents = partition()
    centre = f"{PARENT}005"
    features = [f for f in features if f.key != centre]
    report = check_coverage(features, parents)
    assert report.counts() == {"gap": 1}
    (gap,) = report.problems
    assert gap.codes[0] == PARENT
    # The four edge neighbours border the hole; the corner neighbours only touch it.
    assert gap.codes[1:] == [f"{PARENT}00{k}" for k in (2, 4, 6, 8)]
    assert gap.area_m2 == pytest.approx(100 * 100, rel=0.01)
    assert Polygon(quad(100, 100, 200, 200)).contains(Point(gap.location))
    assert "gap" in gap.message and PARENT in gap.message


def test_child_sticking_out_of_parent():
    features = [("A", quad(0, 0, 100, 100), "P"), ("B", quad(100, 0, 230, 100), "P")]
    report = check_coverage(features, {"P": quad(0, 0, 200, 100)})
    assert report.counts() == {"outside_parent": 1}
    (problem,) = report.problems
    assert problem.codes == ["B", "P"]
    assert problem.area_m2 == pytest.approx(30 * 100, rel=0.01)
    x, _ = in_metres(problem.location)
    assert 200 < x < 230


def test_thin_overlap_is_a_sliver():
    features = [("A", quad(0, 0, 100.5, 100), "P"), ("B", quad(100, 0, 200, 100), "P")]
    report = check_coverage(features, {"P": quad(0, 0, 200, 100)})
    assert report.counts() == {"sliver": 1}
    (sliver,) = report.problems
    assert sliver.detail == "overlap"
    assert sliver.codes == ["A", "B"]
    assert sliver.severity == "error"
    assert sliver.area_m2 == pytest.approx(0.5 * 100, rel=0.01)
    assert "width 0.50 m" in sliver.message


def test_thin_gap_is_a_sliver():
    features = [("A", quad(0, 0, 100, 100), "P"), ("B", quad(100.5, 0, 200, 100), "P")]
    report = check_coverage(features, {"P": quad(0, 0, 200, 100)})
    assert report.counts() == {"sliver": 1}
    (sliver,) = report.problems
    assert sliver.detail == "gap"
    assert sliver.codes == ["P", "A", "B"]
    assert sliver.area_m2 == pytest.approx(50, rel=0.01)


def test_sliver_width_threshold_is_configurable():
    features = [("A", quad(0, 0, 103, 100), "P"), ("B", quad(100, 0, 200, 100), "P")]
    parents = {"P": quad(0, 0, 200, 100)}
    assert check_coverage(features, parents).counts() == {"overlap": 1}
    assert check_coverage(features, parents, sliver_width_m=5).counts() == {"sliver": 1}


def test_pieces_below_min_area_are_ignored():
    # 0.005 m x 100 m = 0.5 m² of overlap and 0.5 m² of gap: numerical noise at 1 m².
    features = [
        ("A", quad(0, 0, 100.005, 100), "P"),
        ("B", quad(100, 0, 200, 100), "P"),
        ("C", quad(200.005, 0, 300, 100), "P"),
    ]
    parents = {"P": quad(0, 0, 300, 100)}
    assert check_coverage(features, parents).problems == []
    finer = check_coverage(features, parents, min_area_m2=0.1)
    assert sorted((p.type, p.detail) for p in finer.problems) == [
        ("sliver", "gap"),
        ("sliver", "overlap"),
    ]


def test_invalid_bow_tie_reported_and_excluded_from_topology():
    features, parents = partition()
    bow = f"{PARENT}005"
    bow_tie = Polygon([pt(100, 100), pt(200, 200), pt(200, 100), pt(100, 200)])
    features = [f if f.key != bow else CoverageFeature(bow, bow_tie, PARENT) for f in features]
    report = check_coverage(features, parents)
    invalid = of_type(report, "invalid_geometry")
    assert len(invalid) == 1
    assert invalid[0].codes == [bow]
    assert "Self-intersection" in invalid[0].message
    assert in_metres(invalid[0].location) == pytest.approx((150, 150), abs=0.01)
    # Left out of the topology checks, its square shows up as a gap.
    assert report.counts() == {"invalid_geometry": 1, "gap": 1}


def test_empty_geometry_reported():
    features, parents = partition()
    features[0] = CoverageFeature(features[0].key, Polygon(), PARENT)
    features[1] = CoverageFeature(features[1].key, None, PARENT)
    report = check_coverage(features, parents)
    empty = of_type(report, "empty_geometry")
    assert [p.codes for p in empty] == [[features[0].key], [features[1].key]]
    assert all(p.severity == "error" for p in empty)


def test_3d_geometry_is_a_warning_only():
    features, parents = partition()
    first = features[0]
    features[0] = CoverageFeature(first.key, shapely.force_3d(first.geometry, 12.0), PARENT)
    report = check_coverage(features, parents)
    assert report.counts() == {"has_z": 1}
    assert report.ok
    assert report.warnings[0].codes == [first.key]


def test_point_geometry_not_polygonal():
    features, parents = partition()
    features[0] = CoverageFeature(features[0].key, Point(pt(50, 50)), PARENT)
    report = check_coverage(features, parents)
    assert of_type(report, "not_polygonal")[0].codes == [features[0].key]
    assert of_type(report, "not_polygonal")[0].severity == "error"


def test_siblings_of_different_parents_are_not_sibling_overlaps():
    # P and Q are side by side; A (in P) reaches 30 m into Q and overlaps Q's child B.
    features = [("A", quad(0, 0, 130, 100), "P"), ("B", quad(100, 0, 200, 100), "Q")]
    parents = {"P": quad(0, 0, 100, 100), "Q": quad(100, 0, 200, 100)}
    report = check_coverage(features, parents)
    assert report.counts() == {"outside_parent": 1}
    assert report.problems[0].codes == ["A", "P"]


def test_units_without_parent_are_checked_among_themselves():
    features = [
        ("A", quad(0, 0, 120, 100), None),
        ("B", quad(100, 0, 200, 100), None),
        ("C", quad(190, 0, 300, 100), "P"),  # different group: no overlap with B reported
    ]
    report = check_coverage(features, {})
    assert report.counts() == {"overlap": 1}
    assert report.problems[0].codes == ["A", "B"]
    assert "without parent" in report.problems[0].message


def test_missing_parent_gets_only_overlap_checks():
    features = [("A", quad(0, 0, 100, 100), "P"), ("B", quad(150, 0, 250, 100), "P")]
    assert check_coverage(features, {}).problems == []


def test_childless_parent_is_one_gap():
    report = check_coverage([], {"P": quad(0, 0, 100, 100)})
    assert report.counts() == {"gap": 1}
    assert report.problems[0].area_m2 == pytest.approx(10_000, rel=0.01)
    assert "no child units" in report.problems[0].message


def test_numeric_codes_are_compared_as_strings():
    # GeoJSON often carries codes as numbers.
    features = [(1001, quad(0, 0, 100, 100), 1000), (1002, quad(100, 0, 230, 100), 1000)]
    report = check_coverage(features, {1000: quad(0, 0, 200, 100)})
    assert [p.codes for p in report.problems] == [["1002", "1000"]]


def test_duplicate_codes_reported():
    features = [("A", quad(0, 0, 100, 100), "P"), ("A", quad(100, 0, 200, 100), "P")]
    report = check_coverage(features, {"P": quad(0, 0, 200, 100)})
    assert report.counts() == {"duplicate_code": 1}


def test_unusable_parent_is_a_warning():
    bow_tie = Polygon([pt(0, 0), pt(100, 100), pt(100, 0), pt(0, 100)])
    features = [("A", quad(0, 0, 60, 100), "P"), ("B", quad(50, 0, 100, 100), "P")]
    report = check_coverage(features, {"P": bow_tie})
    assert report.counts() == {"parent_unusable": 1, "overlap": 1}


def test_features_accept_dicts_and_tuples():
    features = [
        {"key": "A", "geometry": quad(0, 0, 160, 100), "parent": "P"},
        ("B", quad(140, 0, 300, 100), "P"),
    ]
    assert check_coverage(features, {"P": quad(0, 0, 300, 100)}).counts() == {"overlap": 1}


def test_to_dict_is_json_serialisable():
    features = [
        ("A", quad(0, 0, 160, 100), "P"),
        (
            "B",
            quad(
                140,
                0,
                300,
                100,
            ),
            "P",
        ),
        ("C", shapely.force_3d(quad(300, 0, 350, 100)), "P"),
        ("D", Point(pt(10, 10)), "P"),
    ]
    report = check_coverage(features, {"P": quad(0, 0, 400, 100)})
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["summary"] == {
        "features": 4,
        "errors": 3,
        "warnings": 1,
        "by_type": {"not_polygonal": 1, "has_z": 1, "overlap": 1, "gap": 1},
    }
    assert {p["type"] for p in data["problems"]} == {"not_polygonal", "has_z", "overlap", "gap"}
    overlap = next(p for p in data["problems"] if p["type"] == "overlap")
    assert overlap["codes"] == ["A", "B"] and len(overlap["location"]) == 2


# --- repair_coverage -----------------------------------------------------------------------


def test_repair_fixes_overlap_outside_and_gap_then_check_passes():
    features = [
        ("A", quad(0, 0, 120, 100), "P"),  # overlaps B by 20 m
        ("B", quad(100, 0, 200, 100), "P"),
        ("C", quad(200, 0, 330, 100), "P"),  # 30 m outside P
        ("D", quad(0, 100, 300, 180), "P"),  # leaves a 300 x 20 m strip along the top
    ]
    parents = {"P": quad(0, 0, 300, 200)}
    before = check_coverage(features, parents)
    assert before.counts() == {"overlap": 1, "gap": 1, "outside_parent": 1}

    fixed, problems = repair_coverage(features, parents)
    assert set(fixed) == {"A", "B", "C", "D"}
    assert all(isinstance(g, MultiPolygon) and g.is_valid for g in fixed.values())
    assert all(p.fixed and p.change for p in problems)
    assert sorted(p.type for p in problems) == ["gap", "outside_parent", "overlap"]

    # A sorts first and keeps the overlap; B loses it.
    assert geodesic_area_perimeter(fixed["A"])[0] == pytest.approx(12_000, rel=0.01)
    assert geodesic_area_perimeter(fixed["B"])[0] == pytest.approx(8_000, rel=0.01)
    assert geodesic_area_perimeter(fixed["C"])[0] == pytest.approx(10_000, rel=0.01)
    # The strip borders only D along 300 m, so it goes to D.
    assert geodesic_area_perimeter(fixed["D"])[0] == pytest.approx(300 * 100, rel=0.01)
    gap = next(p for p in problems if p.type == "gap")
    assert "merged into D" in gap.change

    after = check_coverage([(k, g, "P") for k, g in fixed.items()], parents)
    assert after.problems == []


def test_repair_gap_goes_to_sibling_with_longest_border():
    # The 20 m wide gap between A and B borders A over 100 m and B over 60 m.
    features = [
        ("A", quad(0, 0, 100, 100), "P"),
        ("B", quad(120, 0, 200, 60), "P"),
        ("C", quad(120, 60, 200, 100), "P"),
    ]
    parents = {"P": quad(0, 0, 200, 100)}
    fixed, problems = repair_coverage(features, parents)
    (gap,) = problems
    assert gap.fixed and "merged into A" in gap.change
    assert geodesic_area_perimeter(fixed["A"])[0] == pytest.approx(12_000, rel=0.01)
    assert check_coverage([(k, g, "P") for k, g in fixed.items()], parents).problems == []


def test_repair_slivers_and_invalid_geometry():
    bow_tie = Polygon([pt(200, 0), pt(300, 100), pt(300, 0), pt(200, 100)])
    features = [
        ("A", quad(0, 0, 100.5, 100), "P"),  # sliver overlap with B
        ("B", quad(100, 0, 199.6, 100), "P"),  # sliver gap before C
        ("C", bow_tie, "P"),
        ("D", shapely.force_3d(quad(0, 100, 300, 200)), "P"),
    ]
    parents = {"P": quad(0, 0, 300, 200)}
    fixed, problems = repair_coverage(features, parents)
    found = sorted((p.type, p.detail, tuple(p.codes)) for p in problems)
    assert found == [
        ("gap", None, ("P", "C")),  # the two triangles the bow-tie leaves empty
        ("gap", None, ("P", "C")),
        ("has_z", None, ("D",)),
        ("invalid_geometry", None, ("C",)),
        ("sliver", "gap", ("P", "B")),  # 0.4 m between B and C
        ("sliver", "overlap", ("A", "B")),  # 0.5 m
    ]
    assert all(p.fixed for p in problems)
    invalid = next(p for p in problems if p.type == "invalid_geometry")
    assert invalid.fixed and invalid.change.startswith("made valid: Self-intersection")
    assert not fixed["D"].has_z
    after = check_coverage([(k, g, "P") for k, g in fixed.items()], parents)
    # The bow-tie's two triangles leave two triangular gaps; they border C and B/D and
    # are filled, so nothing is left.
    assert after.problems == []


def test_repair_leaves_gap_without_bordering_sibling():
    features = [("A", quad(0, 0, 100, 100), "P")]
    parent = MultiPolygon([quad(0, 0, 100, 100), quad(300, 0, 400, 100)])  # island
    fixed, problems = repair_coverage(features, {"P": parent})
    (gap,) = problems
    assert not gap.fixed and gap.change is None
    assert "borders no child" in gap.message
    assert fixed["A"].equals(quad(0, 0, 100, 100))


def test_repair_can_leave_large_gaps_for_a_human():
    features = [("A", quad(0, 0, 100, 100), "P"), ("B", quad(150, 0, 200, 100), "P")]
    parents = {"P": quad(0, 0, 200, 100)}
    fixed, problems = repair_coverage(features, parents, max_fill_area_m2=1000)
    (gap,) = problems
    assert not gap.fixed and gap.codes == ["P", "A", "B"]
    assert "assign it by hand" in gap.message
    assert fixed["A"].equals(quad(0, 0, 100, 100))
    fixed, problems = repair_coverage(features, parents)  # default: every gap is filled
    assert problems[0].fixed and "merged into A" in problems[0].change


def test_repair_rejects_duplicate_codes():
    features = [("A", quad(0, 0, 100, 100), "P"), ("A", quad(100, 0, 200, 100), "P")]
    with pytest.raises(ValueError, match="A"):
        repair_coverage(features, {})


def test_repair_clean_partition_changes_nothing():
    features, parents = partition()
    fixed, problems = repair_coverage(features, parents)
    assert problems == []
    for f in features:
        assert fixed[f.key].equals(f.geometry)


# --- naive baseline ------------------------------------------------------------------------


def test_pairwise_baseline_agrees_with_check():
    rng = np.random.default_rng(3)
    features, parents = partition(5, 5, 50.0)
    shifted = []
    for f in features:
        geom = f.geometry
        if rng.random() < 0.3:
            geom = shapely.affinity.translate(geom, xoff=5 / M_PER_DEG_LON)
        shifted.append(CoverageFeature(f.key, geom, f.parent))
    pairs = check_overlaps_pairwise([f.geometry for f in shifted])
    report = check_coverage(shifted, {})  # no parent geometry: overlaps only
    reported = {tuple(p.codes) for p in report.problems}
    assert reported == {(shifted[i].key, shifted[j].key) for i, j, _ in pairs}
    assert len(pairs) > 0
    areas = {(shifted[i].key, shifted[j].key): area for i, j, area in pairs}
    for p in report.problems:
        assert p.area_m2 == pytest.approx(areas[tuple(p.codes)], rel=1e-4)
