"""Tile basemaps under the maps, chosen by the WEIGE_BASEMAP setting.

* ``none`` (default): no tiles, the overlays on a plain background; works without internet
  access.
* ``tianditu_vec`` / ``tianditu_img``: 天地图 vector (vec_w + cva_w labels) or imagery
  (img_w + cia_w labels), CGCS2000 = WGS84 for display; every tile request carries the browser
  key WEIGE_TIANDITU_KEY.
* ``osm``: OpenStreetMap's standard tiles (WGS84).
* ``amap``: 高德地图 (AMap) road tiles, which are in GCJ-02: everything drawn over them is
  shifted from WGS84 to GCJ-02 (265–620 m in Chinese cities) by `to_display`, and a point
  picked on such a map is in GCJ-02.

`current()` describes the configured basemap as a `Basemap` (tile layers, coordinate system,
hosts the browser loads tiles from); `add_basemap` puts its tile layers on a folium map;
`to_display` and `display_point` turn WGS84 GeoJSON and points into the basemap's system.
Stored data stays WGS84: only what is drawn is shifted. maps.assets accepts tile layers on
the configured basemap's hosts and refuses any other host; maps.checks reports an unknown
WEIGE_BASEMAP or a missing Tianditu key.
"""

import copy
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import folium
import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from gis import crs as crs_tools

NAMES = ("none", "tianditu_vec", "tianditu_img", "osm", "amap")
LABELS = {
    "none": gettext_lazy("No basemap"),
    "tianditu_vec": gettext_lazy("Tianditu map"),
    "tianditu_img": gettext_lazy("Tianditu imagery"),
    "osm": gettext_lazy("OpenStreetMap"),
    "amap": gettext_lazy("AMap (GCJ-02)"),
}
# Credit lines as the providers name themselves (Leaflet shows them as HTML).
TIANDITU_ATTRIBUTION = "© 国家地理信息公共服务平台（天地图）"
OSM_ATTRIBUTION = "© OpenStreetMap 贡献者"
AMAP_ATTRIBUTION = "© 高德地图"

TIANDITU_URL = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
AMAP_URL = (
    "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
    "&x={x}&y={y}&z={z}"
)
# Tianditu's base layer and its label layer for each Tianditu basemap.
TIANDITU_LAYERS = {"tianditu_vec": ("vec", "cva"), "tianditu_img": ("img", "cia")}


class BasemapError(ImproperlyConfigured):
    """WEIGE_BASEMAP / WEIGE_TIANDITU_KEY cannot give a basemap; `hint` says what to set."""

    def __init__(self, message: str, hint: str, check_id: str):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.check_id = check_id


@dataclass(frozen=True)
class Tiles:
    """One Leaflet tile layer: URL template ({s} subdomain, {x} {y} {z}) and its credit."""

    name: str
    url: str
    attribution: str
    subdomains: str = ""
    max_zoom: int = 18
    overlay: bool = False  # a label layer drawn over the base layer

    @property
    def hosts(self) -> frozenset[str]:
        return tile_hosts(self.url, self.subdomains)


@dataclass(frozen=True)
class Basemap:
    """A basemap: `name` (a WEIGE_BASEMAP value), `label` for people, its tile `layers`
    (none for "none"), the coordinate system `crs` of its tiles ("wgs84" or "gcj02")."""

    name: str
    label: str | Promise
    layers: tuple[Tiles, ...] = ()
    crs: str = "wgs84"

    @property
    def hosts(self) -> frozenset[str]:
        """Host names the browser loads this basemap's tiles from."""
        return frozenset().union(*(layer.hosts for layer in self.layers))


def tile_hosts(url: str, subdomains="abc") -> frozenset[str]:
    """Host names a Leaflet tile URL template reaches, its {s} replaced by each subdomain
    (a string of one-character subdomains or a list, as Leaflet takes them). Empty for a
    URL without host (served by the app)."""
    host = urlsplit(url).hostname or ""
    if not host:
        return frozenset()
    if "{s}" not in host:
        return frozenset({host})
    return frozenset(host.replace("{s}", str(sub)) for sub in subdomains)


def _tianditu(name: str, key: str) -> tuple[Tiles, ...]:
    tk = quote(key, safe="")
    return tuple(
        Tiles(
            name=f"tianditu_{layer}",
            url=TIANDITU_URL.format(layer=layer, key=tk),
            attribution=TIANDITU_ATTRIBUTION,
            subdomains="01234567",
            overlay=index > 0,
        )
        for index, layer in enumerate(TIANDITU_LAYERS[name])
    )


def get(name: str, tianditu_key: str = "") -> Basemap:
    """The basemap called `name` (one of NAMES; case and surrounding blanks ignored).

    Raises BasemapError for an unknown name, or for a Tianditu basemap without a key.
    """
    value = str(name).strip().lower()
    if value not in NAMES:
        raise BasemapError(
            f"WEIGE_BASEMAP is {name!r}, which is not a known basemap.",
            hint=f"Set WEIGE_BASEMAP to one of: {', '.join(NAMES)}.",
            check_id="maps.E001",
        )
    label = LABELS[value]
    if value in TIANDITU_LAYERS:
        if not str(tianditu_key).strip():
            raise BasemapError(
                f"WEIGE_BASEMAP is {value!r} but WEIGE_TIANDITU_KEY is empty: Tianditu "
                "serves no tiles without a key.",
                hint="Set WEIGE_TIANDITU_KEY to a Tianditu browser key (from "
                "console.tianditu.gov.cn), or choose another WEIGE_BASEMAP, e.g. 'none'.",
                check_id="maps.E002",
            )
        return Basemap(value, label, _tianditu(value, str(tianditu_key).strip()))
    if value == "osm":
        return Basemap(value, label, (Tiles("osm", OSM_URL, OSM_ATTRIBUTION, max_zoom=19),))
    if value == "amap":
        amap = Tiles("amap", AMAP_URL, AMAP_ATTRIBUTION, subdomains="1234")
        return Basemap(value, label, (amap,), crs="gcj02")
    return Basemap(value, label)


def current() -> Basemap:
    """The basemap the settings WEIGE_BASEMAP and WEIGE_TIANDITU_KEY choose (BasemapError
    if they cannot; `manage.py check` reports the same)."""
    return get(
        getattr(settings, "WEIGE_BASEMAP", "none"), getattr(settings, "WEIGE_TIANDITU_KEY", "")
    )


def add_basemap(fmap: folium.Map, basemap: Basemap) -> folium.Map:
    """Add the basemap's tile layers to `fmap` (nothing for "none"); returns the map."""
    for layer in basemap.layers:
        folium.TileLayer(
            tiles=layer.url,
            attr=layer.attribution,
            name=layer.name,
            subdomains=layer.subdomains or "abc",
            max_zoom=layer.max_zoom,
            overlay=layer.overlay,
            control=False,
        ).add_to(fmap)
    return fmap


# --- Coordinates for display ---------------------------------------------------------------

_COORDINATE_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
_STRUCTURE = frozenset({"type", "coordinates", "geometry", "geometries", "features", "bbox"})


def _is_position(value) -> bool:
    return len(value) > 0 and isinstance(value[0], numbers.Real)


def _coordinate_members(obj: dict) -> Iterator:
    """The `coordinates` member of every geometry in a GeoJSON object, in document order."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "FeatureCollection":
        for feature in obj["features"]:
            yield from _coordinate_members(feature)
    elif kind == "Feature":
        if obj.get("geometry") is not None:
            yield from _coordinate_members(obj["geometry"])
    elif kind == "GeometryCollection":
        for geometry in obj["geometries"]:
            yield from _coordinate_members(geometry)
    elif kind in _COORDINATE_TYPES:
        yield obj["coordinates"]
    else:
        raise ValueError(f"not a GeoJSON geometry, Feature or FeatureCollection: {kind!r}")


def _positions(coordinates, out: list) -> None:
    if _is_position(coordinates):
        out.append(coordinates)
    else:
        for part in coordinates:
            _positions(part, out)


def _replaced_coordinates(coordinates, shifted: Iterator):
    if _is_position(coordinates):
        x, y = next(shifted)
        return [x, y, *coordinates[2:]]
    return [_replaced_coordinates(part, shifted) for part in coordinates]


def _rebuilt(obj: dict, shifted: Iterator) -> dict:
    """A copy of `obj` with the positions taken in order from `shifted` (bbox dropped)."""
    new = {key: copy.deepcopy(value) for key, value in obj.items() if key not in _STRUCTURE}
    new["type"] = kind = obj["type"]
    if kind == "FeatureCollection":
        new["features"] = [_rebuilt(feature, shifted) for feature in obj["features"]]
    elif kind == "Feature":
        geometry = obj.get("geometry")
        new["geometry"] = None if geometry is None else _rebuilt(geometry, shifted)
    elif kind == "GeometryCollection":
        new["geometries"] = [_rebuilt(geometry, shifted) for geometry in obj["geometries"]]
    else:
        new["coordinates"] = _replaced_coordinates(obj["coordinates"], shifted)
    return new


def to_display(geojson: dict, basemap: Basemap) -> dict:
    """`geojson` (a geometry, Feature or FeatureCollection dict, WGS84 lon/lat) in the
    coordinates of `basemap`'s tiles.

    For a GCJ-02 basemap, a new object with every position shifted WGS84 → GCJ-02 (all
    positions converted in one vectorised call; Z and other members kept, `bbox` dropped as
    it no longer fits). For a WGS84 basemap, `geojson` itself. The input is never changed.
    Raises ValueError for anything that is not GeoJSON.
    """
    positions: list = []
    for coordinates in _coordinate_members(geojson):
        _positions(coordinates, positions)
    if basemap.crs == "wgs84":
        return geojson
    lon = np.fromiter((p[0] for p in positions), dtype=np.float64, count=len(positions))
    lat = np.fromiter((p[1] for p in positions), dtype=np.float64, count=len(positions))
    x, y = crs_tools.from_wgs84(lon, lat, basemap.crs)
    return _rebuilt(geojson, zip(np.asarray(x).tolist(), np.asarray(y).tolist(), strict=True))


def display_point(point: tuple[float, float], basemap: Basemap) -> tuple[float, float]:
    """A WGS84 (lon, lat) in the coordinates of `basemap`'s tiles, as (lon, lat)."""
    if basemap.crs == "wgs84":
        return float(point[0]), float(point[1])
    x, y = crs_tools.from_wgs84(point[0], point[1], basemap.crs)
    return float(x), float(y)
