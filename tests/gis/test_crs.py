"""Tests of gis.crs: CRS parsing, GCJ-02/BD-09 conversion, validation and geodesic metrics."""

import math
import time

import numpy as np
import pytest
import shapely
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiPolygon,
    Point,
    Polygon,
)

from gis import crs


@pytest.fixture(autouse=True)
def english():
    """No-op stand-in for tests/conftest.py's Django-only autouse ``english`` fixture: these
    tests are framework-free (run with ``-p no:django``)."""
    yield


TIANANMEN_WGS84 = (116.391, 39.907)
# Published GCJ-02 value of the public algorithm for this point (same in coordTransform,
# eviltransform and prcoords).
TIANANMEN_GCJ02 = (116.39724095859891, 39.9084011088464)


def _china_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random points inside mainland China's bounding box (degrees)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(73.7, 135.0, n), rng.uniform(18.0, 53.5, n)


def _oracle():
    return pytest.importorskip("coordTransform", reason="dev dependency coordtransform missing")


# --- parse_crs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wgs84", "wgs84"),
        ("WGS84", "wgs84"),
        ("WGS 84", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("epsg:4326", "wgs84"),
        ("4326", "wgs84"),
        ("OGC:CRS84", "wgs84"),
        ("cgcs2000", "cgcs2000"),
        ("CGCS2000", "cgcs2000"),
        ("EPSG:4490", "cgcs2000"),
        ("gcj02", "gcj02"),
        ("GCJ-02", "gcj02"),
        ("gcj_02", "gcj02"),
        ("bd09", "bd09"),
        ("BD-09", "bd09"),
        ("bd09ll", "bd09"),
        ("EPSG:4548", "EPSG:4548"),
        (" epsg:3857 ", "EPSG:3857"),
        ("4549", "EPSG:4549"),
        ("urn:ogc:def:crs:EPSG::4490", "cgcs2000"),
        ("urn:ogc:def:crs:EPSG:9.8.15:4548", "EPSG:4548"),
    ],
)
def test_parse_crs_accepts(text: str, expected: str) -> None:
    assert crs.parse_crs(text) == expected


@pytest.mark.parametrize("text", ["", "mars", "EPSG:999999", "EPSG:abc", "gcj03", "baidu09mc"])
def test_parse_crs_refuses_with_list_of_accepted_values(text: str) -> None:
    with pytest.raises(crs.CRSError) as info:
        crs.parse_crs(text)
    message = str(info.value)
    assert repr(text.strip()) in message
    for accepted in ("wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:"):
        assert accepted in message


def test_parse_crs_refuses_non_text() -> None:
    with pytest.raises(crs.CRSError, match="text"):
        crs.parse_crs(4326)  # type: ignore[arg-type]


def test_crs_error_is_value_error() -> None:
    assert issubclass(crs.CRSError, ValueError)
    assert crs.SUPPORTED == ("wgs84", "cgcs2000", "gcj02", "bd09")


# --- GCJ-02 / BD-09 -------------------------------------------------------------------------


def test_tiananmen_published_pair() -> None:
    lon, lat = crs.wgs84_to_gcj02(*TIANANMEN_WGS84)
    assert isinstance(lon, float) and isinstance(lat, float)
    assert lon == pytest.approx(TIANANMEN_GCJ02[0], abs=1e-12)
    assert lat == pytest.approx(TIANANMEN_GCJ02[1], abs=1e-12)
    # The typical Beijing shift: ~ +0.006 lon, ~ +0.0014 lat (about 530 m E, 155 m N).
    assert 0.0055 < lon - TIANANMEN_WGS84[0] < 0.0070
    assert 0.0010 < lat - TIANANMEN_WGS84[1] < 0.0018
    back = crs.gcj02_to_wgs84(*TIANANMEN_GCJ02)
    assert back == pytest.approx(TIANANMEN_WGS84, abs=1e-10)


def test_forward_matches_oracle() -> None:
    ct = _oracle()
    lon, lat = _china_points(20_000)
    g_lon, g_lat = crs.wgs84_to_gcj02(lon, lat)
    o_lon, o_lat = ct.wgs84_to_gcj02(lon, lat)
    np.testing.assert_allclose(g_lon, o_lon, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g_lat, o_lat, rtol=0, atol=1e-12)
    b_lon, b_lat = crs.gcj02_to_bd09(lon, lat)
    o_lon, o_lat = ct.gcj02_to_bd09(lon, lat)
    np.testing.assert_allclose(b_lon, o_lon, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b_lat, o_lat, rtol=0, atol=1e-12)
    b_lon, b_lat = crs.wgs84_to_bd09(lon, lat)
    o_lon, o_lat = ct.wgs84_to_bd09(lon, lat)
    np.testing.assert_allclose(b_lon, o_lon, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b_lat, o_lat, rtol=0, atol=1e-12)


def test_inverses_are_exact_for_oracle_forward() -> None:
    """Our inverse, pushed back through the oracle's forward formula, gives the input back;
    the oracle's own one-step inverse is metres off (which is why we iterate)."""
    ct = _oracle()
    lon, lat = _china_points(20_000, seed=1)
    w_lon, w_lat = crs.gcj02_to_wgs84(lon, lat)
    f_lon, f_lat = ct.wgs84_to_gcj02(w_lon, w_lat)
    np.testing.assert_allclose(f_lon, lon, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f_lat, lat, rtol=0, atol=1e-10)
    crude_lon, crude_lat = ct.gcj02_to_wgs84(lon, lat)
    assert np.max(np.abs(np.asarray(crude_lon) - w_lon)) > 1e-6
    # bd09 -> gcj02: the public approximate inverse agrees to ~1e-6 degree, ours is exact.
    g_lon, g_lat = crs.bd09_to_gcj02(lon, lat)
    o_lon, o_lat = ct.bd09_to_gcj02(lon, lat)
    np.testing.assert_allclose(g_lon, o_lon, rtol=0, atol=2e-6)
    np.testing.assert_allclose(g_lat, o_lat, rtol=0, atol=2e-6)
    f_lon, f_lat = ct.gcj02_to_bd09(g_lon, g_lat)
    np.testing.assert_allclose(f_lon, lon, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f_lat, lat, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84),
        (crs.gcj02_to_bd09, crs.bd09_to_gcj02),
        (crs.wgs84_to_bd09, crs.bd09_to_wgs84),
    ],
)
def test_round_trips_below_1e_7_degree(forward, inverse) -> None:
    lon, lat = _china_points(50_000, seed=2)
    # Include the awkward places: the sqrt(|lon - 105|) kink and the bbox corners.
    lon = np.concatenate([lon, [105.0, 105.0 + 1e-9, 104.99999, 73.7, 135.0]])
    lat = np.concatenate([lat, [35.0, 30.0, 40.0, 18.2, 53.5]])
    f_lon, f_lat = forward(lon, lat)
    b_lon, b_lat = inverse(f_lon, f_lat)
    assert np.max(np.abs(b_lon - lon)) < 1e-9
    assert np.max(np.abs(b_lat - lat)) < 1e-9
    # and the other way round
    i_lon, i_lat = inverse(lon, lat)
    r_lon, r_lat = forward(i_lon, i_lat)
    assert np.max(np.abs(r_lon - lon)) < 1e-9
    assert np.max(np.abs(r_lat - lat)) < 1e-9


@pytest.mark.parametrize(
    "func",
    [
        crs.wgs84_to_gcj02,
        crs.gcj02_to_wgs84,
        crs.gcj02_to_bd09,
        crs.bd09_to_gcj02,
        crs.wgs84_to_bd09,
        crs.bd09_to_wgs84,
    ],
)
def test_arrays_and_scalars_agree(func) -> None:
    # more than two chunks, so the threaded path is exercised too
    lon, lat = _china_points(crs._CHUNK * 3 + 17, seed=3)
    a_lon, a_lat = func(lon, lat)
    assert a_lon.shape == lon.shape and a_lon.dtype == np.float64
    for i in (0, 1, crs._CHUNK, 2 * crs._CHUNK + 5, len(lon) - 1):
        s_lon, s_lat = func(float(lon[i]), float(lat[i]))
        assert isinstance(s_lon, float)
        assert s_lon == pytest.approx(a_lon[i], abs=1e-12)
        assert s_lat == pytest.approx(a_lat[i], abs=1e-12)
    # lists and 2-D arrays are accepted and keep their shape
    l_lon, _ = func(list(lon[:4]), list(lat[:4]))
    np.testing.assert_allclose(l_lon, a_lon[:4], rtol=0, atol=1e-12)
    m_lon, m_lat = func(lon[:6].reshape(2, 3), lat[:6].reshape(2, 3))
    assert m_lon.shape == (2, 3)
    np.testing.assert_allclose(m_lat.ravel(), a_lat[:6], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "point",
    [(-118.24, 34.05), (2.35, 48.86), (139.69, 35.69), (71.9, 39.0), (100.0, 0.5), (90.0, 56.0)],
)
def test_outside_china_unchanged_by_gcj02(point) -> None:
    assert crs.wgs84_to_gcj02(*point) == point
    assert crs.gcj02_to_wgs84(*point) == point


def test_nan_propagates_without_warnings() -> None:
    with np.errstate(all="raise"):
        lon, lat = crs.gcj02_to_wgs84(np.array([np.nan, 116.4]), np.array([39.9, 39.9]))
    assert math.isnan(lon[0]) and math.isnan(lat[0])
    assert math.isfinite(lon[1])


def test_million_points_convert_fast() -> None:
    lon, lat = _china_points(1_000_000, seed=4)
    crs.gcj02_to_wgs84(lon[:10], lat[:10])  # warm up the thread pool
    start = time.perf_counter()
    crs.wgs84_to_gcj02(lon, lat)
    forward = time.perf_counter() - start
    start = time.perf_counter()
    crs.gcj02_to_wgs84(lon, lat)
    inverse = time.perf_counter() - start
    # Typically ~0.1 s and ~0.45 s on 2 cores; generous bounds against noisy CI machines.
    assert forward < 1.0
    assert inverse < 2.0


# --- dispatch and geometries ----------------------------------------------------------------


def test_to_and_from_wgs84_dispatch() -> None:
    lon, lat = 121.4737, 31.2304
    assert crs.to_wgs84(lon, lat, "wgs84") == (lon, lat)
    assert crs.to_wgs84(lon, lat, "EPSG:4490") == (lon, lat)
    assert crs.from_wgs84(lon, lat, "cgcs2000") == (lon, lat)
    assert crs.from_wgs84(lon, lat, "GCJ-02") == crs.wgs84_to_gcj02(lon, lat)
    assert crs.from_wgs84(lon, lat, "bd09") == crs.wgs84_to_bd09(lon, lat)
    assert crs.to_wgs84(lon, lat, "gcj02") == crs.gcj02_to_wgs84(lon, lat)
    assert crs.to_wgs84(lon, lat, "BD-09") == crs.bd09_to_wgs84(lon, lat)
    # EPSG through pyproj, x = easting first (always_xy) even though GK axes are N, E.
    x, y = crs.from_wgs84(120.0, 31.0, "EPSG:4549")
    assert x == pytest.approx(500000.0, abs=1e-6)
    assert 3_400_000 < y < 3_500_000
    back = crs.to_wgs84(x, y, "4549")
    assert back == pytest.approx((120.0, 31.0), abs=1e-9)
    xs, ys = crs.from_wgs84([116.4, 117.0], [39.9, 40.0], "EPSG:4548")
    assert xs.shape == (2,) and xs[1] == pytest.approx(500000.0, abs=1e-6)
    with pytest.raises(crs.CRSError):
        crs.to_wgs84(lon, lat, "mars")


def test_transform_geometry_all_types_and_z_dropped() -> None:
    polygon = Polygon(
        [(116.39, 39.90, 5), (116.40, 39.90, 5), (116.40, 39.91, 7), (116.39, 39.90, 5)]
    )
    geoms = [
        Point(116.391, 39.907),
        LineString([(121.4, 31.2), (121.5, 31.3)]),
        polygon,
        MultiPolygon([polygon, Polygon([(116.5, 39.9), (116.6, 39.9), (116.6, 40.0)])]),
        GeometryCollection([Point(116.4, 39.9), LineString([(116.4, 39.9), (116.5, 40.0)])]),
    ]
    for geom in geoms:
        out = crs.transform_geometry(geom, "wgs84", "gcj02")
        assert out.geom_type == geom.geom_type
        assert not out.has_z
        coords = shapely.get_coordinates(geom)
        expected = np.column_stack(crs.wgs84_to_gcj02(coords[:, 0], coords[:, 1]))
        np.testing.assert_allclose(shapely.get_coordinates(out), expected, rtol=0, atol=1e-12)
    out = crs.transform_geometry(geoms[0], "wgs84", "gcj02")
    assert (out.x, out.y) == pytest.approx(TIANANMEN_GCJ02, abs=1e-12)
    assert crs.transform_geometry(None, "wgs84", "gcj02") is None
    assert crs.transform_geometry(Polygon(), "wgs84", "gcj02").is_empty


def test_transform_geometry_keep_z() -> None:
    polygon = Polygon([(116.39, 39.90, 5), (116.40, 39.90, 5), (116.40, 39.91, 7)])
    out = crs.transform_geometry(polygon, "gcj02", "wgs84", keep_z=True)
    assert out.has_z
    np.testing.assert_array_equal(shapely.get_coordinates(out, include_z=True)[:, 2], [5, 5, 7, 5])
    flat = crs.transform_geometry(Point(116.4, 39.9), "gcj02", "wgs84", keep_z=True)
    assert not flat.has_z


def test_transform_geometries_vectorised_and_round_trip() -> None:
    lon, lat = _china_points(1000, seed=5)
    points = shapely.points(lon, lat)
    arr = np.concatenate([points, np.array([None], dtype=object)])
    gcj = crs.transform_geometries(arr, "wgs84", "gcj02")
    assert gcj.shape == arr.shape and gcj[-1] is None
    np.testing.assert_allclose(
        shapely.get_x(gcj[:-1]), crs.wgs84_to_gcj02(lon, lat)[0], rtol=0, atol=1e-12
    )
    back = crs.transform_geometries(gcj, "gcj02", "wgs84")
    np.testing.assert_allclose(shapely.get_coordinates(back[:-1])[:, 0], lon, atol=1e-10)
    bd = crs.transform_geometries(list(points), "wgs84", "bd09")
    back = crs.transform_geometries(bd, "bd09", "wgs84")
    np.testing.assert_allclose(shapely.get_y(back), lat, rtol=0, atol=1e-10)
    gk = crs.transform_geometries(points, "wgs84", "EPSG:4548")
    assert shapely.get_x(gk).max() > 1000  # metres now
    assert crs.transform_geometries([], "wgs84", "gcj02").size == 0


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [
        (200.0, 10.0, "longitude 200.0 is out of range -180..180"),
        (-180.5, 10.0, "longitude -180.5 is out of range -180..180"),
        (10.0, 95.0, "latitude 95.0 is out of range -90..90"),
        (float("nan"), 10.0, "longitude nan is not a finite number"),
        (10.0, float("inf"), "latitude inf is not a finite number"),
    ],
)
def test_check_lonlat_messages(lon: float, lat: float, message: str) -> None:
    with pytest.raises(crs.CRSError) as info:
        crs.check_lonlat(lon, lat)
    assert str(info.value) == message


def test_check_lonlat_accepts_valid_and_names_bad_index() -> None:
    crs.check_lonlat(180.0, -90.0)
    crs.check_lonlat([116.4, 121.5], [39.9, 31.2])
    with pytest.raises(crs.CRSError, match=r"latitude 91.0 at index 2 is out of range"):
        crs.check_lonlat([1.0, 2.0, 3.0], [1.0, 2.0, 91.0])
    with pytest.raises(crs.CRSError, match="coordinates must be numbers"):
        crs.check_lonlat("east", 1.0)


def test_lonlat_valid_mask() -> None:
    mask = crs.lonlat_valid_mask(
        [116.4, 200.0, np.nan, 10.0, -180.0, np.inf], [39.9, 0.0, 0.0, -91.0, 90.0, 0.0]
    )
    assert mask.dtype == bool
    assert mask.tolist() == [True, False, False, False, True, False]


# --- metrics --------------------------------------------------------------------------------


def test_geodesic_area_of_known_square() -> None:
    # 0.01 x 0.01 degree at the equator: 1113.19 m (lon) x 1105.74 m (lat) on GRS80.
    square = Polygon([(0, 0), (0.01, 0), (0.01, 0.01), (0, 0.01)])
    area = crs.geodesic_area_m2(square)
    assert area == pytest.approx(1113.1949 * 1105.7427, rel=1e-4)
    assert crs.geodesic_area_m2(square.reverse()) == pytest.approx(area, rel=1e-12)
    assert crs.geodesic_length_m(square) == pytest.approx(2 * (1113.1949 + 1105.7427), rel=1e-4)
    # hole subtracted whatever the ring orientation
    holed = Polygon(square.exterior.coords, [[(0.004, 0.004), (0.006, 0.004), (0.006, 0.006)]])
    hole = Polygon([(0.004, 0.004), (0.006, 0.004), (0.006, 0.006)])
    expected = area - crs.geodesic_area_m2(hole)
    assert crs.geodesic_area_m2(holed) == pytest.approx(expected, rel=1e-9)
    # multipolygon with mixed orientation adds up
    other = Polygon([(1, 0), (1, 0.01), (1.01, 0.01), (1.01, 0)])  # clockwise
    assert crs.geodesic_area_m2(MultiPolygon([square, other])) == pytest.approx(2 * area, rel=1e-6)
    assert crs.geodesic_area_m2(LineString([(0, 0), (1, 1)])) == 0.0
    assert crs.geodesic_area_m2(Polygon()) == 0.0
    assert crs.geodesic_area_m2(None) == 0.0


def test_geodesic_length() -> None:
    # one degree of longitude on the equator, GRS80: 111319.49 m
    assert crs.geodesic_length_m(LineString([(0, 0), (1, 0)])) == pytest.approx(111319.49, rel=1e-7)
    assert crs.geodesic_length_m(LineString([(0, 0, 3), (1, 0, 9)])) == pytest.approx(
        111319.49, rel=1e-7
    )
    assert crs.geodesic_length_m(Point(0, 0)) == 0.0


@pytest.mark.parametrize(
    ("lon", "epsg"),
    [
        (116.4, 4548),
        (121.5, 4549),
        (121.47, 4549),
        (114.3, 4547),
        (75.0, 4534),
        (73.6, 4534),
        (135.0, 4554),
        (136.5, 4554),
        (118.5, 4548),
        (118.51, 4549),
    ],
)
def test_gk_zone_epsg(lon: float, epsg: int) -> None:
    assert crs.gk_zone_epsg(lon) == epsg


@pytest.mark.parametrize("lon", [73.4, 137.0, -10.0, float("nan")])
def test_gk_zone_epsg_outside(lon: float) -> None:
    with pytest.raises(crs.CRSError, match="longitude"):
        crs.gk_zone_epsg(lon)


def test_gk_zone_epsg_names_match_pyproj() -> None:
    import pyproj

    assert "CM 117E" in pyproj.CRS.from_epsg(crs.gk_zone_epsg(116.4)).name
    assert "CM 120E" in pyproj.CRS.from_epsg(crs.gk_zone_epsg(121.47)).name


def test_local_metric_transformer() -> None:
    forward, inverse = crs.local_metric_transformer(116.4, 39.9)
    origin = forward(Point(116.4, 39.9))
    assert (origin.x, origin.y) == pytest.approx((0.0, 0.0), abs=1e-6)
    # a point 1 km east along the geodesic is 1000 m away in the plane
    import pyproj

    lon2, lat2, _ = pyproj.Geod(ellps="GRS80").fwd(116.4, 39.9, 90.0, 1000.0)
    east = forward(Point(lon2, lat2))
    assert east.x == pytest.approx(1000.0, abs=1e-6)
    assert east.y == pytest.approx(0.0, abs=1e-6)
    # a 100 m buffer made in metres has the right geodesic area back in lon/lat
    circle = inverse(forward(Point(116.41, 39.91)).buffer(100.0, quad_segs=64))
    assert crs.geodesic_area_m2(circle) == pytest.approx(math.pi * 100.0**2, rel=1e-3)
    # arrays, Z dropped, round trip
    square = Polygon([(116.39, 39.90, 1), (116.40, 39.90, 1), (116.40, 39.91, 1)])
    arr = forward(np.array([square, None], dtype=object))
    assert arr[1] is None and not arr[0].has_z
    back = inverse(arr[0])
    np.testing.assert_allclose(
        shapely.get_coordinates(back), shapely.get_coordinates(square), rtol=0, atol=1e-10
    )
    with pytest.raises(crs.CRSError):
        crs.local_metric_transformer(200.0, 0.0)
