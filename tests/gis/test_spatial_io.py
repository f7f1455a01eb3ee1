"""Tests of gis.spatial_io: reading/writing GeoJSON, GeoPackage, Shapefile and CSV.

All data is built in the test (tmp_path). Framework-free: run with ``-p no:django``.
"""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from gis import crs
from gis.spatial_io import FORMATS, ReadResult, SpatialFileError, read_features, write_features

# The column names weige's callers use; all fit the 10-byte Shapefile limit.
COLUMNS = ["code", "name", "parent", "kind", "households", "population", "valid_from", "valid_to"]

TIANANMEN_WGS84 = (116.391, 39.907)
TIANANMEN_GCJ02 = (116.39724095859891, 39.9084011088464)


@pytest.fixture(autouse=True)
def english():
    """No-op stand-in for tests/conftest.py's Django-only autouse ``english`` fixture: these
    tests are framework-free (run with ``-p no:django``)."""
    yield


def _frame() -> gpd.GeoDataFrame:
    """Two streets and a community with Chinese names, typical attribute types and awkward
    doubles (17 significant digits)."""
    street = Polygon(
        [
            (116.40123456789012, 39.91234567890123),
            (116.42000000000002, 39.91234567890123),
            (116.42000000000002, 39.93456789012345),
            (116.40123456789012, 39.93456789012345),
        ]
    )
    other = MultiPolygon(
        [
            Polygon([(116.43, 39.90), (116.44, 39.90), (116.44, 39.91), (116.43, 39.91)]),
            Polygon([(116.45, 39.90), (116.46, 39.90), (116.46, 39.91)]),
        ]
    )
    community = Polygon(
        [(116.401, 39.913), (116.405, 39.913), (116.405, 39.917), (116.401, 39.917)],
        [[(116.402, 39.914), (116.403, 39.914), (116.403, 39.915)]],
    )
    return gpd.GeoDataFrame(
        {
            "code": ["110101001000", "110101002000", "0101001001"],
            "name": ["东华门街道", "景山街道", "花园社区"],
            "parent": ["110101000000", "110101000000", None],
            "kind": ["street", "street", "community"],
            "households": [12034, 8800, 950],
            "population": [30555, 21000, 2600],
            "valid_from": ["2024-01-01", "2024-01-01", "2024-03-15"],
            "valid_to": [None, "2025-12-31", None],
        },
        geometry=[street, other, community],
        crs="EPSG:4326",
    )


def _normalised(geoms) -> list:
    # Shapefile writers re-orient rings and promote single polygons: compare canonical forms.
    out = []
    for geom in geoms:
        geom = shapely.normalize(geom)
        if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
            geom = geom.geoms[0]
        out.append(geom)
    return out


def _assert_same_shapes(read, expected, tolerance: float) -> None:
    """Same geometries within ``tolerance`` degrees (vertex order/start may differ)."""
    for a, b in zip(_normalised(read), _normalised(expected), strict=True):
        assert a.geom_type == b.geom_type
        assert shapely.get_num_coordinates(a) == shapely.get_num_coordinates(b)
        assert shapely.hausdorff_distance(a, b) <= tolerance, (a.wkt, b.wkt)


def _attrs(frame: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame(frame.drop(columns="geometry")).astype(object)
    return table.where(table.notna(), None).reset_index(drop=True)


def _assert_attrs_equal(read: gpd.GeoDataFrame, expected: gpd.GeoDataFrame) -> None:
    assert list(read.columns) == list(expected.columns)
    got = _attrs(read)
    want = _attrs(expected)
    for column in ("households", "population"):
        got[column] = got[column].astype(int)
        want[column] = want[column].astype(int)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gpkg", "shp", "csv"])
def test_round_trip_exact(tmp_path: Path, fmt: str) -> None:
    frame = _frame()
    path = write_features(frame, tmp_path / f"units.{fmt}", fmt=fmt)
    assert path == tmp_path / f"units.{fmt}"
    result = read_features(path)
    assert isinstance(result, ReadResult)
    assert result.frame.crs.to_epsg() == 4326
    assert result.frame.geometry.name == "geometry"
    assert result.source_crs == "wgs84"
    assert result.encoding == "UTF-8"
    _assert_attrs_equal(result.frame, frame)
    got = _normalised(result.frame.geometry)
    want = _normalised(frame.geometry)
    for a, b in zip(got, want, strict=True):
        assert a.equals_exact(b, tolerance=0.0), (a.wkt, b.wkt)


def test_round_trip_geojson(tmp_path: Path) -> None:
    frame = _frame()
    path = write_features(frame, tmp_path / "units.geojson", fmt="geojson")
    result = read_features(path)
    assert result.warnings == []
    assert result.source_crs == "wgs84"
    _assert_attrs_equal(result.frame, frame)
    for a, b in zip(result.frame.geometry, frame.geometry, strict=True):
        # GDAL trims 17-digit "noise" tails such as ...00000002: within 1e-12 degree.
        assert a.equals_exact(b, tolerance=1e-12)
    # 17 significant digits are written (not 15 decimals): the first vertex is exact.
    data = json.loads(path.read_text(encoding="utf-8"))
    first = data["features"][0]["geometry"]["coordinates"][0][0]
    assert first == [116.40123456789012, 39.91234567890123]
    assert data["features"][0]["properties"]["name"] == "东华门街道"


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "csv"])
def test_random_doubles_are_not_rounded(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(73.0, 135.0, 500)
    lat = rng.uniform(18.0, 53.0, 500)
    frame = gpd.GeoDataFrame(
        {"value": rng.uniform(0, 1, 500)}, geometry=shapely.points(lon, lat), crs=4326
    )
    result = read_features(write_features(frame, tmp_path / f"p.{fmt}", fmt=fmt))
    coords = shapely.get_coordinates(result.frame.geometry.values)
    if fmt == "geojson":
        np.testing.assert_allclose(coords[:, 0], lon, rtol=0, atol=1e-12)
        np.testing.assert_allclose(coords[:, 1], lat, rtol=0, atol=1e-12)
        assert np.mean(coords[:, 0] == lon) > 0.99
    else:
        np.testing.assert_array_equal(coords[:, 0], lon)
        np.testing.assert_array_equal(coords[:, 1], lat)
        np.testing.assert_array_equal(result.frame["value"].to_numpy(dtype=float), frame["value"])


def test_csv_layout(tmp_path: Path) -> None:
    path = write_features(_frame(), tmp_path / "units.csv", fmt="csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM, for Excel
    header = raw[3:].decode("utf-8").splitlines()[0]
    assert header == "wkt," + ",".join(COLUMNS)
    first = raw.decode("utf-8-sig").splitlines()[1]
    x, y = first.split("((", 1)[1].split(",", 1)[0].split()
    assert (float(x), float(y)) == (116.40123456789012, 39.91234567890123)
    csvt = (tmp_path / "units.csvt").read_text().strip().split(",")
    assert csvt == ["String", "String", "String", "String", "String"] + [
        "Integer64",
        "Integer64",
        "String",
        "String",
    ]


def test_shapefile_column_names_and_utf8_cpg(tmp_path: Path) -> None:
    path = write_features(_frame(), tmp_path / "units.shp", fmt="shp")
    assert (tmp_path / "units.cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
    assert list(pyogrio.read_info(path)["fields"]) == COLUMNS
    assert all(len(c) <= 10 for c in COLUMNS)


def test_shapefile_refuses_long_field_names(tmp_path: Path) -> None:
    frame = _frame().assign(households_total=1, 户籍人口数=2)
    with pytest.raises(SpatialFileError) as info:
        write_features(frame, tmp_path / "units.shp", fmt="shp")
    message = str(info.value)
    assert "households_total" in message and "户籍人口数" in message
    assert str(tmp_path / "units.shp") in message
    assert not (tmp_path / "units.shp").exists()


# --- encodings --------------------------------------------------------------------------------


def _gbk_shapefile(tmp_path: Path, *, keep_cpg: bool) -> Path:
    frame = gpd.GeoDataFrame(
        {"code": ["110101001000", "110101001001"], "name": ["东华门街道", "花园社区"]},
        geometry=[Point(116.40, 39.91), Point(116.41, 39.92)],
        crs="EPSG:4326",
    )
    path = tmp_path / "gbk.shp"
    pyogrio.write_dataframe(frame, path, encoding="GBK")
    cpg = tmp_path / "gbk.cpg"
    assert cpg.read_text().strip() == "GBK"
    if not keep_cpg:
        cpg.unlink()
    # The .dbf really holds GBK bytes.
    assert "东华门街道".encode("gbk") in (tmp_path / "gbk.dbf").read_bytes()
    return path


def test_gbk_shapefile_with_cpg(tmp_path: Path) -> None:
    result = read_features(_gbk_shapefile(tmp_path, keep_cpg=True))
    assert result.frame["name"].tolist() == ["东华门街道", "花园社区"]
    assert result.encoding == "GB18030"
    assert result.warnings == []


def test_gbk_shapefile_without_cpg_is_detected(tmp_path: Path) -> None:
    result = read_features(_gbk_shapefile(tmp_path, keep_cpg=False))
    assert result.frame["name"].tolist() == ["东华门街道", "花园社区"]
    assert result.frame["code"].tolist() == ["110101001000", "110101001001"]
    assert result.encoding == "GB18030"
    assert "no .cpg file; text decoded as GBK (GB18030)" in result.warnings


def test_explicit_encoding_wins(tmp_path: Path) -> None:
    path = _gbk_shapefile(tmp_path, keep_cpg=False)
    result = read_features(path, encoding="GBK")
    assert result.frame["name"].tolist() == ["东华门街道", "花园社区"]
    assert result.encoding == "GBK"
    assert not any(".cpg" in w for w in result.warnings)


def test_utf8_shapefile_without_cpg(tmp_path: Path) -> None:
    write_features(_frame(), tmp_path / "u.shp", fmt="shp")
    (tmp_path / "u.cpg").unlink()
    result = read_features(tmp_path / "u.shp")
    assert result.frame["name"].tolist() == ["东华门街道", "景山街道", "花园社区"]
    assert result.encoding == "UTF-8"
    assert "no .cpg file; text decoded as UTF-8" in result.warnings


def test_gbk_csv(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(
        "名称,经度,纬度\n东华门街道,116.4,39.91\n花园社区,116.41,39.92\n".encode("gbk")
    )
    result = read_features(path)
    assert result.frame["名称"].tolist() == ["东华门街道", "花园社区"]
    assert result.encoding == "GB18030"
    assert "CSV text is not UTF-8; decoded as GBK (GB18030)" in result.warnings
    assert shapely.get_coordinates(result.frame.geometry.values).tolist() == [
        [116.4, 39.91],
        [116.41, 39.92],
    ]


# --- CSV geometry -----------------------------------------------------------------------------


def test_csv_lon_lat_columns_and_dirty_rows(tmp_path: Path) -> None:
    path = tmp_path / "addresses.csv"
    path.write_text(
        "address,lng,lat\n"
        "张东路2281弄,121.63742,31.201487\n"
        'bad row,"121.4,31.2",经纬度\n'
        "no coordinates,,\n"
        "罗汉松,121.4818,31.12607\n",
        encoding="utf-8",
    )
    result = read_features(path, crs="gcj02")
    frame = result.frame
    assert result.source_crs == "gcj02"
    assert frame["address"].tolist() == ["张东路2281弄", "bad row", "no coordinates", "罗汉松"]
    assert frame.geometry.isna().tolist() == [False, True, True, False]
    assert any(
        "1 rows have non-numeric coordinates" in w and "data rows 2)" in w for w in result.warnings
    )
    expected = crs.gcj02_to_wgs84(121.63742, 31.201487)
    assert (frame.geometry[0].x, frame.geometry[0].y) == pytest.approx(expected, abs=1e-12)
    # lon/lat columns are kept as they were in the file (audit trail)
    assert frame["lng"][0] == "121.63742"


def test_csv_named_coordinate_columns(tmp_path: Path) -> None:
    path = tmp_path / "two_pairs.csv"
    path.write_text(
        "gcj02_lng,gcj02_lat,wgs84_lng,wgs84_lat\n121.5,31.2,121.49,31.19\n", encoding="utf-8"
    )
    with pytest.raises(SpatialFileError, match="no geometry columns.*gcj02_lng"):
        read_features(path)
    result = read_features(path, lon_field="wgs84_lng", lat_field="wgs84_lat")
    assert (result.frame.geometry[0].x, result.frame.geometry[0].y) == (121.49, 31.19)
    with pytest.raises(SpatialFileError, match="no column 'lon'"):
        read_features(path, lon_field="lon", lat_field="wgs84_lat")


def test_csv_unreadable_wkt_rows(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text('name,geometry\na,"POINT (116.4 39.9)"\nb,GARBAGE\nc,\n', encoding="utf-8")
    result = read_features(path)
    assert result.frame.geometry.isna().tolist() == [False, True, True]
    assert any("unreadable WKT" in w and "data rows 2" in w for w in result.warnings)
    assert list(result.frame.columns) == ["name", "geometry"]


# --- coordinate systems -----------------------------------------------------------------------


def test_gcj02_geojson_read_with_crs_lands_on_wgs84(tmp_path: Path) -> None:
    path = tmp_path / "datav.json"
    feature = {
        "type": "Feature",
        "properties": {"name": "天安门"},
        "geometry": {"type": "Point", "coordinates": list(TIANANMEN_GCJ02)},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), "utf-8")
    result = read_features(path, crs="GCJ-02")
    point = result.frame.geometry[0]
    assert (point.x, point.y) == pytest.approx(TIANANMEN_WGS84, abs=1e-9)
    assert result.source_crs == "gcj02"
    assert result.frame.crs.to_epsg() == 4326
    # GeoJSON implies WGS 84: the override is reported.
    assert any("crs='gcj02' was given" in w for w in result.warnings)
    # Without crs= the coordinates are taken as they are.
    plain = read_features(path)
    assert (plain.frame.geometry[0].x, plain.frame.geometry[0].y) == TIANANMEN_GCJ02


@pytest.mark.parametrize("target", ["gcj02", "bd09"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_write_in_gcj02_bd09_and_read_back(tmp_path: Path, fmt: str, target: str) -> None:
    frame = _frame()
    path = write_features(frame, tmp_path / f"out.{fmt}", fmt=fmt, crs=target)
    info_crs = None if fmt == "csv" else pyogrio.read_info(path)["crs"]
    if fmt in ("gpkg", "shp"):
        assert info_crs is None  # no false EPSG:4326 declaration
    raw = read_features(path)  # coordinates as stored in the file
    shifted = shapely.get_coordinates(raw.frame.geometry[0])
    original = shapely.get_coordinates(frame.geometry[0])
    convert = crs.wgs84_to_gcj02 if target == "gcj02" else crs.wgs84_to_bd09
    expected = np.column_stack(convert(original[:, 0], original[:, 1]))
    assert {tuple(np.round(c, 9)) for c in shifted} == {tuple(np.round(c, 9)) for c in expected}
    back = read_features(path, crs=target)
    _assert_same_shapes(back.frame.geometry, frame.geometry, 1e-9)
    _assert_attrs_equal(back.frame, frame)


def test_projected_file_declared_and_assumed(tmp_path: Path) -> None:
    frame = _frame()
    path = write_features(frame, tmp_path / "gk.shp", fmt="shp", crs="EPSG:4548")
    assert pyogrio.read_info(path)["crs"] == "EPSG:4548"
    result = read_features(path)
    assert result.source_crs == "EPSG:4548"
    _assert_same_shapes(result.frame.geometry, frame.geometry, 1e-9)
    # Without its .prj the metres cannot be taken for degrees ...
    (tmp_path / "gk.prj").unlink()
    with pytest.raises(SpatialFileError, match="declares no coordinate system.*crs='EPSG:"):
        read_features(path)
    # ... unless the caller says what they are.
    given = read_features(path, crs="EPSG:4548")
    assert given.source_crs == "EPSG:4548"
    _assert_same_shapes(given.frame.geometry, frame.geometry, 1e-9)


def test_missing_prj_assumes_wgs84(tmp_path: Path) -> None:
    path = write_features(_frame(), tmp_path / "a.shp", fmt="shp")
    (tmp_path / "a.prj").unlink()
    result = read_features(path)
    assert result.source_crs == "wgs84"
    assert any("assumed WGS 84" in w for w in result.warnings)
    assert result.frame.crs.to_epsg() == 4326


def test_cgcs2000_is_storage_crs(tmp_path: Path) -> None:
    frame = _frame()
    path = write_features(frame, tmp_path / "c.gpkg", fmt="gpkg", crs="cgcs2000")
    assert pyogrio.read_info(path)["crs"] == "EPSG:4490"
    result = read_features(path)
    assert result.source_crs == "cgcs2000"
    assert result.frame.crs.to_epsg() == 4326
    # Mixed Polygon/MultiPolygon layers are promoted to MultiPolygon; coordinates are exact.
    assert result.frame.geom_type.tolist() == ["MultiPolygon"] * 3
    _assert_same_shapes(result.frame.geometry, frame.geometry, 0.0)


def test_rewriting_shapefile_removes_stale_prj(tmp_path: Path) -> None:
    path = write_features(_frame(), tmp_path / "s.shp", fmt="shp")
    assert (tmp_path / "s.prj").exists()
    write_features(_frame(), path, fmt="shp", crs="gcj02")
    assert not (tmp_path / "s.prj").exists()


def test_swapped_lon_lat_hint(tmp_path: Path) -> None:
    path = tmp_path / "swapped.csv"
    path.write_text("name,lon,lat\na,39.9,116.4\n", encoding="utf-8")
    with pytest.raises(SpatialFileError, match="swapped"):
        read_features(path)


# --- 3D ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_3d_geometry_preserved(tmp_path: Path, fmt: str) -> None:
    polygon = Polygon([(116.40, 39.90, 43.5), (116.41, 39.90, 44.0), (116.41, 39.91, 45.25)])
    frame = gpd.GeoDataFrame({"name": ["楼"]}, geometry=[polygon], crs=4326)
    path = write_features(frame, tmp_path / f"z.{fmt}", fmt=fmt)
    result = read_features(path)
    assert result.frame.has_z.tolist() == [True]
    z = sorted(shapely.get_coordinates(result.frame.geometry[0], include_z=True)[:3, 2])
    assert z == [43.5, 44.0, 45.25]
    # conversion keeps Z too
    converted = read_features(path, crs="gcj02")
    geom = converted.frame.geometry[0]
    assert geom.has_z
    assert sorted(shapely.get_coordinates(geom, include_z=True)[:3, 2]) == [43.5, 44.0, 45.25]
    x = shapely.get_coordinates(geom)[:, 0]
    assert np.all(np.abs(x - 116.40) < 0.02) and not np.any(np.isin(x, [116.40, 116.41]))


# --- layers and errors ------------------------------------------------------------------------


def test_multi_layer_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "many.gpkg"
    frame = _frame()
    write_features(frame.iloc[:2], path, fmt="gpkg", layer="streets")
    write_features(frame.iloc[2:], path, fmt="gpkg", layer="communities")
    with pytest.raises(SpatialFileError) as info:
        read_features(path)
    message = str(info.value)
    assert str(path) in message and "'streets'" in message and "'communities'" in message
    result = read_features(path, layer="communities")
    assert result.layer == "communities"
    assert result.frame["name"].tolist() == ["花园社区"]
    with pytest.raises(SpatialFileError, match="no layer 'grids'.*'streets'"):
        read_features(path, layer="grids")
    # rewriting a layer replaces it and keeps the others
    write_features(frame.iloc[:1], path, fmt="gpkg", layer="streets")
    assert len(read_features(path, layer="streets").frame) == 1
    assert len(read_features(path, layer="communities").frame) == 1


def test_single_layer_gpkg_default_name(tmp_path: Path) -> None:
    path = write_features(_frame(), tmp_path / "units.gpkg", fmt="gpkg")
    assert [str(r[0]) for r in pyogrio.list_layers(path)] == ["units"]
    assert read_features(path).layer == "units"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.geojson"
    with pytest.raises(SpatialFileError) as info:
        read_features(path)
    assert str(path) in str(info.value) and "not found" in str(info.value)
    assert issubclass(SpatialFileError, ValueError)


def test_unsupported_and_unreadable(tmp_path: Path) -> None:
    kml = tmp_path / "a.kml"
    kml.write_text("<kml/>")
    with pytest.raises(SpatialFileError, match=r"unsupported file type '\.kml'"):
        read_features(kml)
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "Feat')
    with pytest.raises(SpatialFileError) as info:
        read_features(broken)
    assert str(broken) in str(info.value) and "cannot read as GeoJSON" in str(info.value)
    fake = tmp_path / "fake.gpkg"
    fake.write_bytes(b"this is not a geopackage" * 10)
    with pytest.raises(SpatialFileError, match="cannot read as GeoPackage"):
        read_features(fake)


@pytest.mark.parametrize("name", ["empty.geojson", "empty.csv", "empty.shp", "empty.gpkg"])
def test_zero_byte_file_is_empty_frame(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    result = read_features(path)
    assert len(result.frame) == 0
    assert result.frame.geometry.name == "geometry"
    assert result.frame.crs.to_epsg() == 4326
    assert "file is empty" in result.warnings


def test_empty_collection_and_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "fc.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    result = read_features(path)
    assert len(result.frame) == 0 and result.frame.crs.to_epsg() == 4326
    csv = tmp_path / "h.csv"
    csv.write_text("wkt,name\n")
    result = read_features(csv)
    assert len(result.frame) == 0 and list(result.frame.columns) == ["name", "geometry"]
    # writing an empty frame works too
    empty = gpd.GeoDataFrame({"name": pd.Series([], dtype=str)}, geometry=[], crs=4326)
    for fmt in ("geojson", "gpkg", "csv"):
        assert len(read_features(write_features(empty, tmp_path / f"e.{fmt}", fmt=fmt)).frame) == 0


def test_write_errors(tmp_path: Path) -> None:
    frame = _frame()
    with pytest.raises(SpatialFileError, match="cannot write format 'kml'"):
        write_features(frame, tmp_path / "a.kml", fmt="kml")
    with pytest.raises(SpatialFileError, match="does not exist"):
        write_features(frame, tmp_path / "no" / "a.gpkg", fmt="gpkg")
    with pytest.raises(SpatialFileError, match="clashes with the WKT column"):
        write_features(frame.assign(WKT="x"), tmp_path / "a.csv", fmt="csv")
    with pytest.raises(crs.CRSError):
        write_features(frame, tmp_path / "a.gpkg", fmt="gpkg", crs="mars")
    mixed = gpd.GeoDataFrame(
        {"n": [1, 2]}, geometry=[Point(116.4, 39.9), frame.geometry[0]], crs=4326
    )
    with pytest.raises(SpatialFileError, match=r"a\.shp.*cannot write as Shapefile"):
        write_features(mixed, tmp_path / "a.shp", fmt="shp")


def test_write_converts_other_frame_crs(tmp_path: Path) -> None:
    frame = _frame()
    projected = frame.to_crs("EPSG:4548")
    result = read_features(write_features(projected, tmp_path / "p.gpkg", fmt="gpkg"))
    assert result.source_crs == "wgs84"
    _assert_same_shapes(result.frame.geometry, frame.geometry, 1e-9)
