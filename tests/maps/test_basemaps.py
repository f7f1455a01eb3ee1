"""Basemaps (WEIGE_BASEMAP): tile layers, attribution, allowed hosts, GCJ-02 display shift."""

import copy
import json
import re

import folium
import numpy as np
import pytest
import shapely.geometry
from django.core import checks
from django.core.checks.registry import registry
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from gis import crs
from maps import basemaps
from maps.assets import ForeignAsset, foreign_urls, render_fragment, use_local_assets
from maps.builders import Boundary, incident_map, picker_map
from maps.checks import check_basemap

KEY = "k3y0123456789abcdef"
POINT = (104.005, 30.607)
MICRO = {
    "type": "Polygon",
    "coordinates": [
        [[104.0, 30.605], [104.01, 30.605], [104.01, 30.61], [104.0, 30.61], [104.0, 30.605]]
    ],
}


def tianditu(layer: str) -> str:
    return (
        f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
        f"&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
        f"&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={KEY}"
    )


TIANDITU = "© 国家地理信息公共服务平台（天地图）"
AMAP_URL = (
    "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
    "&x={x}&y={y}&z={z}"
)
# name → [(URL template, subdomains, attribution)] of the tile layers, bottom first
EXPECTED = {
    "tianditu_vec": [
        (tianditu("vec"), "01234567", TIANDITU),
        (tianditu("cva"), "01234567", TIANDITU),
    ],
    "tianditu_img": [
        (tianditu("img"), "01234567", TIANDITU),
        (tianditu("cia"), "01234567", TIANDITU),
    ],
    "osm": [("https://tile.openstreetmap.org/{z}/{x}/{y}.png", None, "© OpenStreetMap 贡献者")],
    "amap": [(AMAP_URL, "1234", "© 高德地图")],
}
TILE_LAYER_RE = re.compile(r'L\.tileLayer\(\s*("(?:[^"\\]|\\.)*")\s*,\s*(\{[^{}]*\})')


@pytest.fixture
def use(settings):
    """Switch WEIGE_BASEMAP (with a Tianditu key) for one test."""

    def switch(name: str, key: str = KEY):
        settings.WEIGE_BASEMAP = name
        settings.WEIGE_TIANDITU_KEY = key

    return switch


@pytest.fixture
def on(use):
    """Switch WEIGE_BASEMAP and return the basemap it gives."""

    def switch(name: str, key: str = KEY) -> basemaps.Basemap:
        use(name, key)
        return basemaps.current()

    return switch


def tile_layers(script: str) -> list[tuple[str, dict]]:
    """(URL template, options) of each L.tileLayer in a map's script, in order."""
    layers = []
    for url, options in TILE_LAYER_RE.findall(script):
        layers.append((json.loads(url), json.loads(re.sub(r",\s*}", "}", options))))
    return layers


def drawn_geometries(script: str) -> list[dict]:
    """The geometry of every feature of every folium.GeoJson in a map's script."""
    geometries = []
    for data in geojson_data(script):
        features = data["features"] if data["type"] == "FeatureCollection" else [data]
        geometries += [feature["geometry"] for feature in features]
    return geometries


def geojson_data(script: str) -> list[dict]:
    """The data of every folium.GeoJson in a map's script."""
    decoder = json.JSONDecoder()
    return [
        decoder.raw_decode(script, match.end())[0] for match in re.finditer(r"_add\((?=\{)", script)
    ]


def circle_marker(script: str) -> tuple[float, float]:
    """(lon, lat) of the one CircleMarker in a map's script."""
    lat, lon = re.search(r"L\.circleMarker\(\s*\[([-\d.e]+),\s*([-\d.e]+)\]", script).groups()
    return float(lon), float(lat)


def page_of(fragment) -> str:
    return f"{fragment.head}\n{fragment.html}\n{fragment.script}"


def distance_m(a, b) -> float:
    return crs.geodesic_length_m(shapely.geometry.LineString([a, b]))


# --- tile layers and attribution ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_basemap_puts_its_tiles_and_attribution_under_the_map(use, name):
    use(name)
    fragment = render_fragment(incident_map(POINT, [Boundary("M11", "micro", MICRO)]))
    layers = tile_layers(fragment.script)
    assert [url for url, _ in layers] == [url for url, _, _ in EXPECTED[name]]
    for (_, options), (_, subdomains, attribution) in zip(layers, EXPECTED[name], strict=True):
        assert options["attribution"] == attribution
        if subdomains:
            assert options["subdomains"] == subdomains
    if name.startswith("tianditu"):
        assert [options["maxZoom"] for _, options in layers] == [18, 18]
    # the only other host the page names is the tile server
    hosts = {url.split("/")[2] for url, _, _ in EXPECTED[name]}
    urls = foreign_urls(page_of(fragment).replace("\\u0026", "&"))
    assert urls and {url.split("/")[2] for url in urls} == hosts


def test_no_basemap_means_no_tiles_and_no_other_host(on):
    basemap = on("none")
    assert (basemap.layers, basemap.hosts, basemap.crs) == ((), set(), "wgs84")
    fragment = render_fragment(incident_map(POINT, [Boundary("M11", "micro", MICRO)]))
    assert "L.tileLayer(" not in fragment.script
    assert foreign_urls(page_of(fragment)) == []


def test_basemap_descriptions(on):
    vec = on("tianditu_vec")
    assert vec.crs == "wgs84" and str(vec.label) == "Tianditu map"
    assert vec.hosts == {f"t{i}.tianditu.gov.cn" for i in range(8)}
    assert [layer.overlay for layer in vec.layers] == [False, True]
    amap = on("amap")
    assert amap.crs == "gcj02"
    assert amap.hosts == {f"webrd0{i}.is.autonavi.com" for i in range(1, 5)}
    assert on("osm").hosts == {"tile.openstreetmap.org"}
    assert on(" AMap ").name == "amap"


def test_the_tianditu_key_is_url_encoded(on):
    basemap = on("tianditu_img", key="a&b=c")
    assert all(layer.url.endswith("&tk=a%26b%3Dc") for layer in basemap.layers)


# --- coordinates of the overlays ------------------------------------------------------------


def test_on_amap_the_boundary_and_the_point_are_drawn_in_gcj02(use):
    use("amap")
    script = render_fragment(incident_map(POINT, [Boundary("M11", "micro", MICRO)])).script
    (geometry,) = drawn_geometries(script)
    drawn = np.array(geometry["coordinates"][0])
    wgs = np.array(MICRO["coordinates"][0])
    gx, gy = crs.from_wgs84(wgs[:, 0], wgs[:, 1], "gcj02")
    np.testing.assert_allclose(drawn, np.column_stack([gx, gy]), rtol=0, atol=1e-9)
    for a, b in zip(wgs, drawn, strict=True):
        assert 250 < distance_m(a, b) < 700  # GCJ-02's offset near Chengdu
    lon, lat = circle_marker(script)
    expected = crs.from_wgs84(*POINT, "gcj02")
    assert lon == pytest.approx(expected[0], abs=1e-9)
    assert lat == pytest.approx(expected[1], abs=1e-9)
    assert 250 < distance_m(POINT, (lon, lat)) < 700


@pytest.mark.parametrize("name", ["tianditu_vec", "osm", "none"])
def test_on_wgs84_basemaps_the_coordinates_are_unchanged(use, name):
    use(name)
    script = render_fragment(incident_map(POINT, [Boundary("M11", "micro", MICRO)])).script
    (geometry,) = drawn_geometries(script)
    assert geometry["coordinates"] == MICRO["coordinates"]
    assert circle_marker(script) == POINT


def test_on_amap_the_picker_map_is_fitted_to_the_shifted_boundaries(use):
    use("amap")
    script = render_fragment(picker_map([Boundary("M11", "micro", MICRO, "scope")])).script
    wgs = np.array(MICRO["coordinates"][0])
    x, y = crs.from_wgs84(wgs[:, 0], wgs[:, 1], "gcj02")
    numbers = re.search(r"fitBounds\(\s*\[\[([^\]]+)\],\s*\[([^\]]+)\]\]", script).groups()
    (s, w), (n, e) = ([float(v) for v in pair.split(",")] for pair in numbers)
    assert (s, w, n, e) == pytest.approx((y.min(), x.min(), y.max(), x.max()), abs=1e-9)


def test_an_explicit_basemap_overrides_the_setting(use):
    use("none")
    amap = basemaps.get("amap")
    fmap = incident_map(POINT, basemap=amap)
    fragment = render_fragment(fmap, allowed_tile_hosts=amap.hosts)
    assert [url for url, _ in tile_layers(fragment.script)] == [AMAP_URL]
    assert circle_marker(fragment.script) != POINT


# --- to_display -----------------------------------------------------------------------------

HOLE = [[104.002, 30.606], [104.004, 30.606], [104.004, 30.608], [104.002, 30.606]]
SHAPES = {
    "Point": {"type": "Point", "coordinates": [104.005, 30.607]},
    "Polygon": {"type": "Polygon", "coordinates": [MICRO["coordinates"][0], HOLE]},
    "MultiPolygon": {
        "type": "MultiPolygon",
        "coordinates": [MICRO["coordinates"], [[[p[0] + 0.1, p[1]] for p in HOLE]]],
    },
    "Feature": {
        "type": "Feature",
        "id": 7,
        "geometry": {"type": "LineString", "coordinates": [[104.0, 30.6, 500.0], [104.1, 30.7]]},
        "properties": {"code": "M11", "tags": ["a"]},
    },
    "FeatureCollection": {
        "type": "FeatureCollection",
        "bbox": [104.0, 30.6, 104.01, 30.61],
        "features": [
            {"type": "Feature", "geometry": MICRO, "properties": {"code": "M11"}},
            {"type": "Feature", "geometry": None, "properties": {}},
            {
                "type": "Feature",
                "geometry": {
                    "type": "GeometryCollection",
                    "geometries": [
                        {"type": "Point", "coordinates": [104.005, 30.607]},
                        {"type": "MultiPoint", "coordinates": [[104.0, 30.6], [104.01, 30.61]]},
                    ],
                },
                "properties": {"code": "P"},
            },
        ],
    },
}


def shifted_positions(obj) -> list[list[float]]:
    """Every position of `obj` shifted one by one with gis.crs (the reference)."""
    out = []

    def walk(value):
        if isinstance(value, dict):
            for key in ("coordinates", "geometry", "geometries", "features"):
                if value.get(key) is not None:
                    walk(value[key])
        elif value and isinstance(value[0], float):
            x, y = crs.from_wgs84(value[0], value[1], "gcj02")
            out.append([x, y, *value[2:]])
        else:
            for part in value:
                walk(part)

    walk(obj)
    return out


def positions(obj) -> list[list[float]]:
    out = []

    def walk(value):
        if isinstance(value, dict):
            for key in ("coordinates", "geometry", "geometries", "features"):
                if value.get(key) is not None:
                    walk(value[key])
        elif value and isinstance(value[0], float):
            out.append(list(value))
        else:
            for part in value:
                walk(part)

    walk(obj)
    return out


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_to_display_shifts_every_position_without_changing_the_input(kind):
    original = SHAPES[kind]
    before = copy.deepcopy(original)
    shown = basemaps.to_display(original, basemaps.get("amap"))
    assert original == before
    assert shown["type"] == kind
    expected = shifted_positions(original)
    got = positions(shown)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose([p[:2] for p in got], [p[:2] for p in expected], rtol=0, atol=1e-12)
    assert [p[2:] for p in got] == [p[2:] for p in expected]  # Z kept
    assert all(p[:2] != q[:2] for p, q in zip(got, positions(original), strict=True))
    json.dumps(shown)  # plain JSON values


def test_to_display_keeps_the_other_members_as_copies():
    feature = SHAPES["Feature"]
    shown = basemaps.to_display(feature, basemaps.get("amap"))
    assert shown["id"] == 7 and shown["properties"] == feature["properties"]
    shown["properties"]["tags"].append("b")
    assert feature["properties"]["tags"] == ["a"]
    collection = basemaps.to_display(SHAPES["FeatureCollection"], basemaps.get("amap"))
    assert "bbox" not in collection  # it would no longer fit
    assert collection["features"][1]["geometry"] is None


def test_to_display_on_a_wgs84_basemap_is_the_identity():
    for name in ("none", "osm"):
        polygon = SHAPES["Polygon"]
        assert basemaps.to_display(polygon, basemaps.get(name)) is polygon
    assert basemaps.display_point(POINT, basemaps.get("osm")) == POINT


def test_to_display_refuses_what_is_not_geojson():
    with pytest.raises(ValueError, match="Circle"):
        basemaps.to_display({"type": "Circle", "coordinates": [1, 2]}, basemaps.get("amap"))


def test_display_point_is_gcj02_on_amap():
    assert basemaps.display_point(POINT, basemaps.get("amap")) == crs.from_wgs84(*POINT, "gcj02")


# --- configuration checks -------------------------------------------------------------------


def test_the_check_is_registered():
    assert check_basemap in registry.get_checks()


def test_an_unknown_basemap_is_a_configuration_error(use):
    use("google")
    (error,) = check_basemap()
    assert isinstance(error, checks.Error) and error.id == "maps.E001"
    assert "'google'" in error.msg
    assert "none, tianditu_vec, tianditu_img, osm, amap" in error.hint
    with pytest.raises(basemaps.BasemapError, match="google"):
        basemaps.current()
    with pytest.raises(SystemCheckError, match="maps.E001"):
        call_command("check")


@pytest.mark.parametrize("name", ["tianditu_vec", "tianditu_img"])
def test_tianditu_without_a_key_is_a_configuration_error(use, name):
    use(name, key="  ")
    (error,) = check_basemap()
    assert error.id == "maps.E002" and "WEIGE_TIANDITU_KEY" in error.msg
    assert "WEIGE_TIANDITU_KEY" in error.hint


@pytest.mark.parametrize("name", basemaps.NAMES)
def test_every_known_basemap_passes_the_check(use, name):
    use(name)
    assert check_basemap() == []


# --- which tile hosts a page may load from --------------------------------------------------


def tiled_map(url: str, subdomains: str = "abc") -> folium.Map:
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    folium.TileLayer(url, attr="x", subdomains=subdomains).add_to(fmap)
    return fmap


def test_the_configured_basemaps_tiles_are_accepted_and_no_other(use):
    use("amap")
    render_fragment(tiled_map(AMAP_URL, "1234"))
    with pytest.raises(ForeignAsset, match="openstreetmap"):
        render_fragment(tiled_map("https://tile.openstreetmap.org/{z}/{x}/{y}.png"))
    with pytest.raises(ForeignAsset, match="webrd0"):  # webrd05 is not one of AMap's hosts
        render_fragment(tiled_map(AMAP_URL, "12345"))
    with pytest.raises(ForeignAsset, match="evil"):
        render_fragment(tiled_map("https://webrd01.is.autonavi.com.evil.example/{z}/{x}/{y}"))
    use("tianditu_vec")
    render_fragment(tiled_map(tianditu("vec"), "01234567"))
    with pytest.raises(ForeignAsset, match="autonavi"):
        render_fragment(tiled_map(AMAP_URL, "1234"))
    use("none")
    with pytest.raises(ForeignAsset, match="tianditu"):
        render_fragment(tiled_map(tianditu("vec"), "01234567"))


def test_use_local_assets_takes_the_allowed_hosts_explicitly(use):
    use("amap")
    with pytest.raises(ForeignAsset, match="autonavi"):
        use_local_assets(tiled_map(AMAP_URL, "1234"))  # nothing allowed by default
    amap = basemaps.current()
    use_local_assets(tiled_map(AMAP_URL, "1234"), allowed_tile_hosts=amap.hosts)
    with pytest.raises(ForeignAsset, match="autonavi"):
        render_fragment(tiled_map(AMAP_URL, "1234"), allowed_tile_hosts=())


def test_wms_layers_are_checked_too(use):
    use("osm")
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    folium.WmsTileLayer("https://wms.example.com/wms", layers="x", attr="x").add_to(fmap)
    with pytest.raises(ForeignAsset, match="wms.example.com"):
        render_fragment(fmap)


# --- picking a point ------------------------------------------------------------------------


def test_on_amap_the_picker_says_clicks_are_gcj02(use):
    use("amap")
    script = render_fragment(picker_map([Boundary("M11", "micro", MICRO)], point=POINT)).script
    assert 'set(crs, "gcj02");' in script
    assert 'crs.value === "gcj02"' in script
    assert '"wgs84"' not in script
    lon, lat = crs.from_wgs84(*POINT, "gcj02")
    assert f"place([{lat}, {lon}])" in script


def test_on_wgs84_basemaps_the_picker_says_clicks_are_wgs84(use):
    use("tianditu_vec")
    script = render_fragment(picker_map(point=POINT)).script
    assert 'set(crs, "wgs84");' in script and 'crs.value === "wgs84"' in script
    assert f"place([{POINT[1]}, {POINT[0]}])" in script
