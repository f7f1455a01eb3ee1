"""Map builders: plain data in, a folium.Map out (no database, no request).

Coordinates are WGS84, longitude first, as everywhere in weige; folium wants latitude first
and the builders turn them around. Boundaries are GeoJSON geometry dicts (e.g.
``json.loads(version.geom.geojson)``). Each builder takes a `basemap` (maps.basemaps; the
configured one, WEIGE_BASEMAP, by default): its tiles go under the overlays, and on a GCJ-02
basemap (AMap) every boundary and point is drawn shifted to GCJ-02 so that it lines up with
the tiles. The default basemap is none: the maps must work on a network without internet
access, so they show the boundaries on a plain background. Render the result with
maps.assets.render_fragment.
"""

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import folium
import shapely.geometry

from maps import basemaps
from maps.basemaps import Basemap
from maps.elements import PointPicker

# How each kind of boundary is drawn (Leaflet path options).
STYLES = {
    "microgrid": {"color": "#b71c1c", "weight": 3, "fillOpacity": 0.08},
    "grid": {"color": "#1f2933", "weight": 2, "dashArray": "6 4", "fillOpacity": 0.0},
    "candidate": {"color": "#d97706", "weight": 2, "dashArray": "2 4", "fillOpacity": 0.05},
    "scope": {"color": "#1f2933", "weight": 2, "fillOpacity": 0.03},
}
POINT_COLOUR = "#0b5cad"


@dataclass(frozen=True)
class Boundary:
    """One unit's outline on a map; `role` picks its style in STYLES."""

    code: str
    name: str
    geometry: dict  # GeoJSON geometry in WGS84 lon/lat
    role: str = "microgrid"


def _text(value: str) -> str:
    """Text safe inside folium's HTML-in-a-JavaScript-template-literal tooltips."""
    return html.escape(value).replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;")


def _bounds(
    boundaries: Sequence[Boundary], points: Iterable[tuple[float, float]]
) -> list[list[float]] | None:
    """[[south, west], [north, east]] around the boundaries and points, or None if empty."""
    boxes = [shapely.geometry.shape(b.geometry).bounds for b in boundaries]
    boxes += [(lon, lat, lon, lat) for lon, lat in points]
    if not boxes:
        return None
    west, south, east, north = zip(*boxes, strict=True)
    return [[min(south), min(west)], [max(north), max(east)]]


def _new_map(center: tuple[float, float] | None, height: int, basemap: Basemap) -> folium.Map:
    """A map on `basemap`; `center` (lon, lat) is already in the basemap's coordinates."""
    location = [center[1], center[0]] if center else None
    fmap = folium.Map(
        location=location,
        zoom_start=16,
        tiles=None,
        height=height,
        control_scale=True,
    )
    return basemaps.add_basemap(fmap, basemap)


def _displayed(boundaries: Iterable[Boundary], basemap: Basemap) -> list[Boundary]:
    """The boundaries with their geometries in the basemap's coordinates (one conversion)."""
    boundaries = list(boundaries)
    shown = basemaps.to_display(
        {"type": "GeometryCollection", "geometries": [b.geometry for b in boundaries]}, basemap
    )["geometries"]
    return [replace(b, geometry=g) for b, g in zip(boundaries, shown, strict=True)]


def _draw_boundaries(fmap: folium.Map, boundaries: Iterable[Boundary]) -> None:
    for boundary in boundaries:
        style = STYLES.get(boundary.role, STYLES["microgrid"])
        folium.GeoJson(
            {
                "type": "Feature",
                "geometry": boundary.geometry,
                "properties": {"code": boundary.code},
            },
            name=boundary.code,
            style_function=lambda _feature, style=style: style,
            tooltip=folium.Tooltip(_text(f"{boundary.name} ({boundary.code})")),
        ).add_to(fmap)


def add_boundaries(
    fmap: folium.Map, boundaries: Iterable[Boundary], basemap: Basemap | None = None
) -> None:
    """Draw the (WGS84) boundaries on `fmap`, shifted for `basemap` (default: the configured
    one), which must be the basemap the map was built on."""
    basemap = basemaps.current() if basemap is None else basemap
    _draw_boundaries(fmap, _displayed(boundaries, basemap))


def _fit(fmap: folium.Map, bounds) -> None:
    if bounds and bounds[0] != bounds[1]:
        fmap.fit_bounds(bounds, max_zoom=18)


def incident_map(
    point: tuple[float, float],
    boundaries: Sequence[Boundary] = (),
    *,
    label: str = "",
    height: int = 320,
    basemap: Basemap | None = None,
) -> folium.Map:
    """An incident's point (lon, lat) with the outlines of its units, fitted to both, on
    `basemap` (default: the configured one)."""
    basemap = basemaps.current() if basemap is None else basemap
    shown = _displayed(boundaries, basemap)
    point = basemaps.display_point(point, basemap)
    fmap = _new_map(point, height, basemap)
    _draw_boundaries(fmap, shown)
    folium.CircleMarker(
        location=[point[1], point[0]],
        radius=8,
        color="#ffffff",
        weight=2,
        fill=True,
        fill_color=POINT_COLOUR,
        fill_opacity=1.0,
        tooltip=folium.Tooltip(_text(label)) if label else None,
    ).add_to(fmap)
    _fit(fmap, _bounds(shown, [point]))
    return fmap


def picker_map(
    boundaries: Sequence[Boundary] = (),
    *,
    point: tuple[float, float] | None = None,
    center: tuple[float, float] | None = None,
    inputs: tuple[str, str, str] = ("id_lon", "id_lat", "id_crs"),
    height: int = 360,
    basemap: Basemap | None = None,
) -> folium.Map:
    """A map to pick a point on by clicking (maps.elements.PointPicker fills the inputs
    with these ids: lon, lat, crs), showing `boundaries`, centred on the point if given
    (`point` and `center` are WGS84). On a GCJ-02 `basemap` a click gives GCJ-02
    coordinates and sets the CRS input to "gcj02"."""
    basemap = basemaps.current() if basemap is None else basemap
    shown = _displayed(boundaries, basemap)
    if point is not None:
        point = basemaps.display_point(point, basemap)
    if center is not None:
        center = basemaps.display_point(center, basemap)
    fmap = _new_map(point or center, height, basemap)
    _draw_boundaries(fmap, shown)
    lon_input, lat_input, crs_input = inputs
    fmap.add_child(PointPicker(lon_input, lat_input, crs_input, point=point, crs=basemap.crs))
    if point is None:
        _fit(fmap, _bounds(shown, []))
    return fmap
