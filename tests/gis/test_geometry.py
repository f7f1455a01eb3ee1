"""Framework-free tests of gis.geometry (run with ``-p no:django``)."""

import json

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiPolygon,
    Point,
    Polygon,
)

from gis.geometry import (
    Problem,
    geodesic_area_perimeter,
    normalize_polygonal,
    parse_reason,
    repair_polygonal,
    to_multipolygon,
)


@pytest.fixture(autouse=True)
def english():
    """No-op stand-in for tests/conftest.py's Django-only autouse ``english`` fixture.

    These tests are framework-free (run with ``-p no:django``), where the ``settings`` fixture
    that one needs does not exist.
    """
    yield


LON0, LAT0 = 104.06, 30.66  # Chengdu
_GEOD = Geod(ellps="GRS80")
# Metres per degree at LAT0, measured with pyproj over a small step.
M_PER_DEG_LON = _GEOD.inv(LON0, LAT0, LON0 + 0.001, LAT0)[2] / 0.001
M_PER_DEG_LAT = _GEOD.inv(LON0, LAT0, LON0, LAT0 + 0.001)[2] / 0.001


def pt(x: float, y: float) -> tuple[float, float]:
    """Local metres east/north of the Chengdu origin -> (lon, lat)."""
    return LON0 + x / M_PER_DEG_LON, LAT0 + y / M_PER_DEG_LAT


def quad(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon([pt(x0, y0), pt(x1, y0), pt(x1, y1), pt(x0, y1)])


def codes_of(problems: list[Problem]) -> list[str]:
    return [p.type for p in problems]


def test_clean_polygon_becomes_multipolygon_without_problems():
    result = normalize_polygonal(quad(0, 0, 100, 100), code="510199001001001")
    assert result.ok
    assert result.problems == []
    assert isinstance(result.geometry, MultiPolygon)
    assert not result.geometry.has_z


def test_multipolygon_passes_through():
    mp = MultiPolygon([quad(0, 0, 10, 10), quad(20, 0, 30, 10)])
    result = normalize_polygonal(mp)
    assert result.ok and result.geometry.equals(mp)


def test_empty_and_none_are_errors():
    for geom in (None, Polygon(), MultiPolygon()):
        result = normalize_polygonal(geom, code="X")
        assert result.geometry is None
        assert codes_of(result.problems) == ["empty_geometry"]
        assert result.problems[0].severity == "error"
        assert result.problems[0].codes == ["X"]
        assert result.problems[0].message.startswith("X: ")


@pytest.mark.parametrize(
    "geom",
    [Point(LON0, LAT0), LineString([pt(0, 0), pt(10, 10)]), GeometryCollection([Point(1, 2)])],
)
def test_points_lines_and_arealess_collections_are_not_polygonal(geom):
    result = normalize_polygonal(geom, code="G1")
    assert result.geometry is None
    assert codes_of(result.problems) == ["not_polygonal"]
    problem = result.problems[0]
    assert problem.severity == "error"
    assert problem.location is not None
    assert "G1" in problem.message


def test_collection_with_polygons_is_reduced_with_a_warning():
    collection = GeometryCollection([quad(0, 0, 10, 10), Point(pt(50, 50)), quad(20, 0, 30, 10)])
    result = normalize_polygonal(collection)
    assert result.ok
    assert len(result.geometry.geoms) == 2
    assert codes_of(result.problems) == ["not_polygonal"]
    assert result.problems[0].severity == "warning"
    assert "Point" in result.problems[0].message


def test_z_is_dropped_with_a_warning():
    poly3d = Polygon([(*pt(0, 0), 5.0), (*pt(10, 0), 5.0), (*pt(10, 10), 6.0), (*pt(0, 10), 5.0)])
    result = normalize_polygonal(poly3d)
    assert result.ok
    assert not result.geometry.has_z
    assert codes_of(result.problems) == ["has_z"]
    assert result.problems[0].severity == "warning"


def test_bow_tie_reports_geos_reason_and_location():
    a, b, c, d = pt(0, 0), pt(100, 100), pt(100, 0), pt(0, 100)
    bow_tie = Polygon([a, b, c, d])
    result = normalize_polygonal(bow_tie, code="B1")
    assert not result.ok
    assert isinstance(result.geometry, MultiPolygon)  # still returned, for the repair path
    (problem,) = result.problems
    assert problem.type == "invalid_geometry"
    assert "Self-intersection" in problem.message
    centre = pt(50, 50)
    assert problem.location == pytest.approx(centre, abs=1e-9)
    assert f"{centre[0]:.6f},{centre[1]:.6f}" in problem.message


def test_too_few_points():
    collapsed = shapely.from_wkt(
        f"POLYGON (({LON0} {LAT0}, {LON0} {LAT0}, {LON0} {LAT0}, {LON0} {LAT0}))"
    )
    result = normalize_polygonal(collapsed)
    assert "too_few_points" in codes_of(result.problems)
    assert not result.ok


def _nan_polygon() -> Polygon:
    with np.errstate(invalid="ignore"):
        return Polygon([(LON0, LAT0), (LON0 + 0.01, LAT0), (float("nan"), LAT0 + 0.01)])


@pytest.mark.parametrize(
    "make",
    [
        lambda: shapely.box(500000, 3390000, 500100, 3390100),  # projected metres, not degrees
        lambda: shapely.box(30.66, 104.06, 30.67, 104.07),  # lat/lon swapped: "lat" 104 > 90
        _nan_polygon,
    ],
    ids=["projected", "swapped", "nan"],
)
def test_out_of_range_coordinates(make):
    geom = make()
    result = normalize_polygonal(geom)
    assert "out_of_range" in codes_of(result.problems)
    assert result.problems[0].location is None  # not a place on the map
    assert not result.ok
    with pytest.raises(ValueError, match="outside lon/lat range"):
        repair_polygonal(geom)


def test_parse_reason():
    assert parse_reason("Self-intersection[116.61 40.03]") == ("Self-intersection", (116.61, 40.03))
    assert parse_reason("Ring Self-intersection[22.7166526 41.7393918]") == (
        "Ring Self-intersection",
        (22.7166526, 41.7393918),
    )
    assert parse_reason("Invalid Coordinate[nan 10]") == ("Invalid Coordinate", None)
    assert parse_reason("Nested shells") == ("Nested shells", None)


def test_repair_bow_tie():
    bow_tie = Polygon([pt(0, 0), pt(100, 100), pt(100, 0), pt(0, 100)])
    fixed, changes = repair_polygonal(bow_tie)
    assert isinstance(fixed, MultiPolygon) and fixed.is_valid
    assert len(fixed.geoms) == 2
    assert len(changes) == 1 and changes[0].startswith("made valid: Self-intersection at ")
    # The planar signed area of a bow-tie is 0, so the change is given in m² (two 50x50/2 lobes).
    assert "m²" in changes[0]
    assert geodesic_area_perimeter(fixed)[0] == pytest.approx(5000, rel=0.01)


def test_repair_ring_self_intersection_reports_area_change():
    # A square with a "figure-8" hole touching itself: the ring crosses itself once.
    shell = [pt(0, 0), pt(100, 0), pt(100, 100), pt(0, 100)]
    loop = Polygon([*shell[:2], pt(100, 50), pt(150, 60), pt(150, 40), pt(100, 50), *shell[2:]])
    reason = shapely.is_valid_reason(loop)
    fixed, changes = repair_polygonal(loop)
    assert fixed.is_valid and isinstance(fixed, MultiPolygon)
    assert changes and changes[0].startswith("made valid: ")
    assert reason.split("[")[0] in changes[0]
    assert "area" in changes[0]


def test_repair_drops_z_and_repeated_points():
    a, b, c, d = pt(0, 0), pt(10, 0), pt(10, 10), pt(0, 10)
    poly = Polygon([(*a, 1.0), (*b, 1.0), (*b, 1.0), (*c, 1.0), (*d, 1.0)])
    fixed, changes = repair_polygonal(poly)
    assert not fixed.has_z
    assert shapely.get_num_coordinates(fixed) == 5
    assert "dropped Z coordinates" in changes
    assert any("repeated point" in c for c in changes)


def test_repair_valid_geometry_changes_nothing():
    poly = quad(0, 0, 10, 10)
    fixed, changes = repair_polygonal(poly)
    assert changes == []
    assert fixed.equals(poly)


def test_repair_non_polygonal_gives_empty_multipolygon():
    fixed, changes = repair_polygonal(LineString([pt(0, 0), pt(1, 1)]))
    assert fixed.is_empty and isinstance(fixed, MultiPolygon)
    assert "LineString" in changes[0]


def test_to_multipolygon_keeps_only_polygons():
    mixed = GeometryCollection([quad(0, 0, 1, 1), LineString([pt(0, 0), pt(5, 5)])])
    out = to_multipolygon(mixed)
    assert isinstance(out, MultiPolygon) and len(out.geoms) == 1


def test_geodesic_area_perimeter_of_100m_square():
    area, perimeter = geodesic_area_perimeter(quad(0, 0, 100, 100))
    assert area == pytest.approx(10_000, rel=1e-3)
    assert perimeter == pytest.approx(400, rel=1e-3)
    holed = quad(0, 0, 100, 100).difference(quad(25, 25, 75, 75))
    assert geodesic_area_perimeter(holed)[0] == pytest.approx(7_500, rel=1e-3)


def test_problem_to_dict_is_json_ready():
    problem = Problem(
        "overlap", "error", ["A", "B"], "A and B overlap", (104.06, 30.66), 12.5, detail=None
    )
    data = json.loads(json.dumps(problem.to_dict()))
    assert data["location"] == [104.06, 30.66]
    assert data["codes"] == ["A", "B"]
    assert data["fixed"] is False and data["change"] is None
