"""Map builders: plain data in, a folium.Map out (no database, no request).

Coordinates are WGS84, longitude first, as everywhere in weige; folium wants latitude first
and the builders turn them around. Boundaries are GeoJSON geometry dicts (e.g.
``json.loads(version.geom.geojson)``). No tile basemap is loaded by default: the maps must
work on a network without internet access, so they show the boundaries on a plain
background. Render the result with maps.assets.render_fragment.
"""

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import folium
import shapely.geometry

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


def _new_map(center: tuple[float, float] | None, height: int) -> folium.Map:
    location = [center[1], center[0]] if center else None
    return folium.Map(
        location=location,
        zoom_start=16,
        tiles=None,
        height=height,
        control_scale=True,
    )


def add_boundaries(fmap: folium.Map, boundaries: Iterable[Boundary]) -> None:
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


def _fit(fmap: folium.Map, bounds) -> None:
    if bounds and bounds[0] != bounds[1]:
        fmap.fit_bounds(bounds, max_zoom=18)


def incident_map(
    point: tuple[float, float],
    boundaries: Sequence[Boundary] = (),
    *,
    label: str = "",
    height: int = 320,
) -> folium.Map:
    """An incident's point (lon, lat) with the outlines of its units, fitted to both."""
    fmap = _new_map(point, height)
    add_boundaries(fmap, boundaries)
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
    _fit(fmap, _bounds(boundaries, [point]))
    return fmap


def picker_map(
    boundaries: Sequence[Boundary] = (),
    *,
    point: tuple[float, float] | None = None,
    center: tuple[float, float] | None = None,
    inputs: tuple[str, str, str] = ("id_lon", "id_lat", "id_crs"),
    height: int = 360,
) -> folium.Map:
    """A map to pick a point on by clicking (maps.elements.PointPicker fills the inputs
    with these ids: lon, lat, crs), showing `boundaries`, centred on the point if given."""
    fmap = _new_map(point or center, height)
    add_boundaries(fmap, boundaries)
    lon_input, lat_input, crs_input = inputs
    fmap.add_child(PointPicker(lon_input, lat_input, crs_input, point=point))
    if point is None:
        _fit(fmap, _bounds(boundaries, []))
    return fmap
