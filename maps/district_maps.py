"""Map builders for the district-scale pages: plain data in, a folium.Map out.

Unlike maps.builders (a handful of inlined outlines), these maps carry no features: each
layer is a maps.remote.RemoteLayer that the browser fills from a layer endpoint by box and
zoom. A builder takes the box to show first, the layer URLs (already carrying any filters)
and the basemap; the pages in maps.views supply them. Every map has a scale bar, a
fullscreen button, a layer control, a legend and a status line.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import folium
from django.utils.translation import gettext as _
from folium.plugins import Fullscreen

from maps import basemaps
from maps.remote import Legend, RemoteLayer, StatusLine

MICROGRID_MIN_ZOOM = 14
COURTYARD_MIN_ZOOM = 13
# Colours shared with maps/static/maps/layers.js.
BAND_COLOURS = {"ok": "#2e7d32", "thin": "#f9a825", "missing": "#c62828"}
DENSITY_COLOURS = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"]


@dataclass(frozen=True)
class LayerSpec:
    """One remote layer on a page: its endpoint URL (with filters), renderer, key, name."""

    key: str
    url: str
    style: str
    name: str
    min_zoom: int | None = None
    overlay: bool = True
    show: bool = True
    wait_for: str | None = None  # the key of the layer to let draw first
    # asked for before Leaflet loads when the map opens fitted to its bounds (the page's
    # main layer; its endpoint must answer for the whole scope without a box)
    early: bool = False


def js_labels() -> dict[str, str]:
    """The words layers.js writes into popups, tooltips and the status line."""
    return {
        "households": _("households"),
        "population": _("population"),
        "band": _("staffing"),
        "band_ok": _("fully staffed"),
        "band_thin": _("thinly staffed"),
        "band_missing": _("key post vacant"),
        "chief": _("grid chief"),
        "members": _("grid members"),
        "members_per_100": _("members per 100 households"),
        "liaison": _("micro-grid liaison"),
        "building_heads": _("building heads"),
        "volunteers": _("party-member volunteers"),
        "problems": _("coverage problems"),
        "problem_gap": _("gap"),
        "problem_overlap": _("overlap"),
        "problem_sliver": _("sliver"),
        "problem_outside_parent": _("outside its parent"),
        "units": _("units"),
        "none": _("none"),
        "merged": _("merged courtyard"),
        "merged_into": _("merged into"),
        "merged_on": _("merged on"),
        "yes": _("yes"),
        "no": _("no"),
        "pilot": _("fine-grid pilot"),
        "address": _("address"),
        "open": _("open incidents"),
        "overdue": _("overdue"),
        "on_time_closure_30d": _("on-time closure, last 30 days"),
        "staff": _("staff"),
        "workstations": _("workstations"),
        "state": _("state"),
        "reported_at": _("reported at"),
        "grid": _("grid"),
        "cluster": _("%(count)s incidents, %(overdue)s overdue; click to zoom in"),
        "total": _("%(count)s incidents match"),
        "zoom_in": _("zoom in to see this layer"),
        "empty": _("%(layer)s: none in this view"),
        "loading": _("loading…"),
        "failed": _("this layer could not be loaded"),
    }


def district_map(
    bounds: Sequence[Sequence[float]] | None,
    layers: Sequence[LayerSpec],
    legend: Legend,
    *,
    basemap: basemaps.Basemap | None = None,
    height: int | str = 600,
    start: tuple[float, float, int] | None = None,
    unit_url: str = "/maps/units/{code}/",
) -> folium.Map:
    """A map fitted to `bounds` ([[south, west], [north, east]] in the display CRS), or
    opened at `start` (lat, lon, zoom), with the remote `layers`, their control, `legend`,
    scale bar, fullscreen and status line."""
    basemap = basemap or basemaps.current()
    fmap = folium.Map(
        location=[start[0], start[1]] if start else None,
        zoom_start=start[2] if start else 12,
        tiles=None,
        height=height,
        control_scale=True,
        prefer_canvas=False,
    )
    basemaps.add_basemap(fmap, basemap)
    if bounds and not start:  # before the layers: they are added at the view they draw
        fmap.fit_bounds(bounds)
    labels = js_labels()
    for spec in layers:
        RemoteLayer(
            spec.url,
            spec.style,
            spec.name,
            spec.key,
            labels=labels,
            unit_url=unit_url,
            min_zoom=spec.min_zoom,
            wait_for=spec.wait_for,
            overlay=spec.overlay,
            show=spec.show,
            early_bounds=bounds if spec.early and spec.show and bounds and not start else None,
            early_view=start if spec.early and spec.show and start else None,
        ).add_to(fmap)
    Fullscreen(
        position="topleft",
        title=_("Full screen"),
        title_cancel=_("Leave full screen"),
    ).add_to(fmap)
    StatusLine().add_to(fmap)
    legend.add_to(fmap)
    folium.LayerControl(collapsed=False, position="topright").add_to(fmap)
    return fmap


def coverage_legend() -> Legend:
    return Legend(
        _("Staffing coverage"),
        [
            ("fill", BAND_COLOURS["ok"], _("fully staffed")),
            ("fill", BAND_COLOURS["thin"], _("thinly staffed")),
            ("fill", BAND_COLOURS["missing"], _("key post vacant")),
            ("dashed", "#6a1b9a", _("unit with a coverage problem")),
            ("dot", "#d50000", _("gap, overlap or sliver (error)")),
            ("dot", "#ff6d00", _("coverage warning")),
            ("outline", "#1565c0", _("courtyard")),
            ("outline", "#4527a0", _("merged courtyard")),
            ("dashed", "#6d4c41", _("former compound")),
            ("dot", "#00897b", _("pilot workstation")),
            ("dot", "#546e7a", _("workstation")),
        ],
    )


def hazard_legend() -> Legend:
    return Legend(
        _("Incidents"),
        [
            ("dot", "#0b5cad", _("incident")),
            ("dot", "#d50000", _("overdue incident")),
            ("dot", "rgba(11,92,173,.8)", _("cluster (number of incidents)")),
            ("dot", "rgba(213,0,0,.8)", _("cluster with overdue incidents")),
            *[
                ("fill", colour, label)
                for colour, label in zip(
                    DENSITY_COLOURS,
                    [
                        _("no open incident"),
                        _("few open incidents"),
                        _("some open incidents"),
                        _("many open incidents"),
                        _("most open incidents"),
                    ],
                    strict=True,
                )
            ],
        ],
    )


def workstation_legend() -> Legend:
    return Legend(
        _("Grid workstations"),
        [
            ("dot", "#00897b", _("pilot workstation (精网微格)")),
            ("dot", "#546e7a", _("other workstation")),
            ("fill", "#00897b", _("units served by a pilot workstation")),
            ("fill", "#546e7a", _("units served by another workstation")),
        ],
    )


def unit_legend() -> Legend:
    return Legend(
        _("Unit"),
        [
            ("outline", "#0b5cad", _("this unit")),
            ("fill", "#90caf9", _("units below it")),
            ("dashed", "#757575", _("neighbouring units")),
            ("dot", "#0b5cad", _("incident")),
            ("dot", "#d50000", _("overdue incident")),
        ],
    )


def unit_map(
    outline: dict,
    children: dict,
    neighbours: dict,
    bounds: Sequence[Sequence[float]] | None,
    layers: Sequence[LayerSpec],
    *,
    basemap: basemaps.Basemap | None = None,
    height: int | str = 520,
    unit_url: str = "/maps/units/{code}/",
) -> folium.Map:
    """One unit (`outline`, a GeoJSON Feature), the units below it and its neighbours
    (FeatureCollections with name and code; already in the display CRS), plus remote layers
    (its incidents)."""
    fmap = district_map(
        bounds, layers, unit_legend(), basemap=basemap, height=height, unit_url=unit_url
    )
    tooltip_fields = ["name", "code"]
    aliases = [_("name"), _("code")]
    groups = [
        (
            neighbours,
            _("neighbouring units"),
            {"color": "#757575", "weight": 1.5, "dashArray": "5 4", "fillOpacity": 0.03},
        ),
        (
            children,
            _("units below it"),
            {"color": "#1565c0", "weight": 1, "fillColor": "#90caf9", "fillOpacity": 0.35},
        ),
        (
            {"type": "FeatureCollection", "features": [outline]},
            _("this unit"),
            {"color": "#0b5cad", "weight": 3, "fillOpacity": 0.0},
        ),
    ]
    for data, name, style in groups:
        if not data["features"]:
            continue
        folium.GeoJson(
            data,
            name=name,
            style_function=lambda _f, style=style: style,
            tooltip=folium.GeoJsonTooltip(fields=tooltip_fields, aliases=aliases),
        ).add_to(fmap)
    # The layer control lists what was added before it: move it to the end.
    control = next(c for c in fmap._children.values() if isinstance(c, folium.LayerControl))
    del fmap._children[control.get_name()]
    fmap.add_child(control)
    return fmap
