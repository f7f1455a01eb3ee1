"""folium elements for layers the browser fetches from the app (maps/static/maps/layers.js).

`RemoteLayer` is a folium Layer, so LayerControl lists it: as an overlay (a check box) or,
with ``overlay=False``, as one of a set of exclusive choices (radio buttons; e.g. grids or
micro-grids). Its features are never inlined in the page: the browser asks `url` for the
visible box at the current zoom. `Legend` is a map control with coloured keys and text;
`StatusLine` is where the layers say "loading", "zoom in to see …" or how many incidents
they hold.
"""

import json
import math
from html import escape

from branca.element import MacroElement
from django.templatetags.static import static
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.plugins import HeatMap
from folium.template import Template

from maps.assets import PAGE_ASSETS
from maps.geometry_cache import ZOOM_BANDS

STYLES = (
    "units",
    "problems",
    "courtyards",
    "workstations",
    "workstation_units",
    "incidents",
    "heat",
    "density",
)


class RemoteLayer(JSCSSMixin, Layer):
    """Features from `url` (a maps layer endpoint with its filters), drawn by the renderer
    `style` of layers.js, fetched again after every move; nothing below `min_zoom`.
    `unit_url` is the unit map's address with "{code}" for the unit code; `wait_for` names
    the layer whose first drawing this one waits for (at most 1.5 s) before fetching.

    With `early_bounds` ([[south, west], [north, east]], the bounds the map is fitted to
    when it opens), the page asks for the layer's first answer before anything else has
    loaded: `early_script` is a small script for the top of the page's head that guesses
    the zoom Leaflet's fitBounds will choose (from the window's width, PAGE_COLUMN and the
    map's height) and requests every feature in the user's scope at that zoom (no box:
    everything in scope lies within the bounds). layers.js takes that answer for its first
    drawing when the map opens at a zoom of the same detail band
    (maps.geometry_cache.ZOOM_BANDS), and otherwise asks again as usual.

    With `early_view` instead ((lat, lon, zoom), where a shared address opens the map), the
    early request is the one layers.js would make: the box the map shows around that centre
    at that zoom (its size guessed the same way), padded by a fifth on every side. layers.js
    takes that answer when the map opens at that zoom and the box holds the map's view.

    Either way the head also preloads the request for a window wide enough to give the
    content column its full width (`early_request`), so the browser sends it as it reads the
    head, before the script runs; the script's request, the same in such a window, is
    answered from the preload. The units layer's text sequence is asked for by address
    (format=geojson-seq), as a preload cannot choose its Accept header."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = weige.remoteLayer({{ this.js_options|tojson }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        url: str,
        style: str,
        name: str,
        key: str,
        *,
        labels: dict,
        unit_url: str = "/maps/units/{code}/",
        min_zoom: int | None = None,
        wait_for: str | None = None,
        overlay: bool = True,
        show: bool = True,
        early_bounds=None,
        early_view=None,
    ):
        if style not in STYLES:
            raise ValueError(f"unknown layer style {style!r}")
        super().__init__(name=name, overlay=overlay, control=True, show=show)
        self._name = "RemoteLayer"
        self.js_options = {
            "url": url,
            "style": style,
            "name": key,
            "title": str(name),
            "minZoom": min_zoom,
            "waitFor": wait_for,
            "unitUrl": unit_url,
            "labels": {k: str(v) for k, v in labels.items()},
            "early": bool(early_bounds or early_view),
        }
        self.early_bounds = early_bounds
        self.early_view = early_view
        self.default_js = [("weige_layers", static(PAGE_ASSETS["weige_layers"]))]
        self.default_css = [("weige_maps_css", static(PAGE_ASSETS["weige_maps_css"]))]
        if style == "heat":
            self.default_js = [*HeatMap.default_js, *self.default_js]

    def early_script(self, map_name: str) -> str:
        """The <script> that sends this layer's first request (see the class docstring),
        after a preload of that request for a window as wide as the content column gets
        (see `early_request`); "" for a map whose height is not in pixels."""
        height, unit = self._parent.height
        if unit != "px":
            return ""
        url = self.js_options["url"]
        if self.js_options["style"] == "units":  # the text sequence, asked for by address
            url += ("&" if "?" in url else "?") + "format=geojson-seq"
        facts = {
            "map": map_name,
            "name": self.js_options["name"],
            "url": url,
            "height": height,
            "column": PAGE_COLUMN,
            "bands": list(ZOOM_BANDS),
        }
        if self.early_view:
            lat, lon, zoom = self.early_view
            facts["view"] = [lat, lon, zoom]
        else:
            (south, west), (north, east) = self.early_bounds
            facts["bounds"] = [[south, west], [north, east]]
        wide = early_request(facts, PAGE_COLUMN["max"])
        if wide is None:
            return ""  # bounds of no size: the layer asks as usual
        facts["wide"] = wide
        # as django.utils.html.json_script does: nothing in it can end the script element
        text = json.dumps(facts).translate(_SCRIPT_SAFE)
        preload = (
            f'<link rel="preload" as="fetch" crossorigin="anonymous" href="{escape(wide["url"])}"'
            f' media="(min-width: {PAGE_COLUMN["max"] + PAGE_COLUMN["gutter"]}px)">\n'
        )
        return preload + EARLY_SCRIPT.replace("FACTS", text)


_SCRIPT_SAFE = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}

# The width of the pages' content column, where maps are 100 % wide: at most 1,100 px, and
# the window's width less 2 × 1.5 rem of padding (main in weige/site.css; 48 px at the
# default 16 px root font). Only the early request's guess of the first zoom depends on it,
# and the guess is approximate anyway: at the top of the head the window's width still
# includes a vertical scrollbar the page may later need.
PAGE_COLUMN = {"max": 1100, "gutter": 48}


def _mercator_y(lat: float) -> float:
    s = max(min(math.sin(lat * math.pi / 180), 0.9999999999), -0.9999999999)
    return math.log((1 + s) / (1 - s)) / 2


def early_request(facts: dict, width: float) -> dict | None:
    """The early request EARLY_SCRIPT makes for a map `width` pixels wide, as {"url", "zoom",
    "low", "high", "box"}; None when the bounds have no size.

    The page's head holds a preload of the request for a window wide enough for the content
    column's full width (a media query), so the browser asks for it as soon as it reads the
    head, before any script has run; the script takes this request as it is when the map is
    that wide, and the preloaded answer is then its answer. Computed as the script computes
    it (Leaflet 1.9's fitBounds without padding at zoomSnap 1, or the box around a view
    padded by a fifth on every side, in spherical Mercator).
    """
    url = facts["url"] + ("&" if "?" in facts["url"] else "?")
    height = facts["height"]
    box = None
    if "view" in facts:
        lat, lon, zoom = facts["view"]
        low = high = zoom
        scale = 256 * 2**zoom
        cx = (lon + 180) / 360 * scale
        cy = (0.5 - _mercator_y(lat) / (2 * math.pi)) * scale

        def to_lon(px):
            return px / scale * 360 - 180

        def to_lat(py):
            angle = 2 * math.atan(math.exp((0.5 - py / scale) * 2 * math.pi)) - math.pi / 2
            return angle * 180 / math.pi

        west, east = to_lon(cx - width / 2), to_lon(cx + width / 2)
        north, south = to_lat(cy - height / 2), to_lat(cy + height / 2)
        pad_x, pad_y = (east - west) * 0.2, (north - south) * 0.2
        box = [south - pad_y, west - pad_x, north + pad_y, east + pad_x]
        url += "bbox=" + ",".join(f"{v:.6f}" for v in (box[1], box[0], box[3], box[2])) + "&"
    else:
        (south, west), (north, east) = facts["bounds"]
        dx = (east - west) / 360 * 256
        dy = (_mercator_y(north) - _mercator_y(south)) / (2 * math.pi) * 256
        scale = min(width / dx if dx else math.inf, height / dy if dy else math.inf)
        if not 0 < scale < math.inf:  # no size (the script sends nothing either)
            return None
        zoom = math.log(scale) / math.log(2)
        zoom = max(0, min(24, math.floor(math.floor(zoom * 100 + 0.5) / 100)))
        low, high = 0, 24
        for band in facts["bands"]:
            if zoom <= band:
                high = band
                break
            low = band + 1
    return {"url": f"{url}zoom={zoom}", "zoom": zoom, "low": low, "high": high, "box": box}


# Runs at the top of the page's head, before any stylesheet or script has loaded, so it
# cannot measure the map: it takes the map's width from the window and the content column,
# and mirrors Leaflet 1.9's fitBounds (getBoundsZoom without padding, zoomSnap 1, spherical
# Mercator) for the zoom the map will open at. A wrong guess costs one request, no more.
EARLY_SCRIPT = """<script>
(function (f) {
    var weige = window.weige = window.weige || {};
    var width = Math.min(f.column.max, window.innerWidth - f.column.gutter);
    if (!window.Promise || !(width > 0)) { return; }
    function y(lat) {
        var s = Math.max(Math.min(Math.sin(lat * Math.PI / 180), 0.9999999999), -0.9999999999);
        return Math.log((1 + s) / (1 - s)) / 2;
    }
    var zoom, low, high, box = null, url = f.url + (f.url.indexOf("?") < 0 ? "?" : "&");
    if (width === f.column.max) {  // the request the head preloads (maps.remote.early_request)
        zoom = f.wide.zoom;
        low = f.wide.low;
        high = f.wide.high;
        box = f.wide.box;
        url = f.wide.url;
    } else if (f.view) {  // the box layers.js asks for: the view padded by a fifth on every side
        zoom = low = high = f.view[2];
        var scale = 256 * Math.pow(2, zoom);
        var cx = (f.view[1] + 180) / 360 * scale;
        var cy = (0.5 - y(f.view[0]) / (2 * Math.PI)) * scale;
        var lon = function (px) { return px / scale * 360 - 180; };
        var lat = function (py) {
            return (2 * Math.atan(Math.exp((0.5 - py / scale) * 2 * Math.PI)) - Math.PI / 2)
                * 180 / Math.PI;
        };
        var west = lon(cx - width / 2), east = lon(cx + width / 2);
        var north = lat(cy - f.height / 2), south = lat(cy + f.height / 2);
        var padX = (east - west) * 0.2, padY = (north - south) * 0.2;
        box = [south - padY, west - padX, north + padY, east + padX];
        url += "bbox=" + [box[1], box[0], box[3], box[2]].map(function (v) {
            return v.toFixed(6);
        }).join(",") + "&zoom=" + zoom;
    } else {  // the zoom fitBounds will choose; everything in scope lies within the bounds
        var dx = (f.bounds[1][1] - f.bounds[0][1]) / 360 * 256;
        var dy = (y(f.bounds[1][0]) - y(f.bounds[0][0])) / (2 * Math.PI) * 256;
        zoom = Math.log(Math.min(width / dx, f.height / dy)) / Math.LN2;
        if (!isFinite(zoom)) { return; }
        zoom = Math.max(0, Math.min(24, Math.floor(Math.round(zoom * 100) / 100)));
        low = 0;
        high = 24;
        for (var i = 0; i < f.bands.length; i++) {
            if (zoom <= f.bands[i]) { high = f.bands[i]; break; }
            low = f.bands[i] + 1;
        }
        url += "zoom=" + zoom;
    }
    // XMLHttpRequest rather than fetch: its text is handed to the page as soon as the main
    // thread is free, often before the map's script runs, where fetch's text waits for the
    // page to be parsed; `got` holds it then, for layers.js to draw as it adds the layer.
    // When the request is the head's preload, the browser answers it from the preload.
    var early = {low: low, high: high, box: box, url: url, got: null};
    early.answer = new Promise(function (resolve, reject) {
        var xhr = new XMLHttpRequest();
        xhr.open("GET", url);
        xhr.onload = function () {  // read here, parsed by layers.js (its read())
            if (xhr.status < 200 || xhr.status > 299) {
                reject(new Error(String(xhr.status)));
                return;
            }
            early.got = {type: xhr.getResponseHeader("Content-Type") || "", text: xhr.responseText};
            resolve(early.got);
        };
        xhr.onerror = xhr.onabort = xhr.ontimeout = function () {
            reject(new Error("no answer"));
        };
        xhr.send();
    });
    early.answer.catch(function () {});  // layers.js asks again
    weige.early = weige.early || {};
    weige.early[f.map + " " + f.name] = early;
})(FACTS);
</script>"""


class StatusLine(MacroElement):
    """The corner where remote layers write their state."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        weige.statusControl({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "StatusLine"


class Legend(MacroElement):
    """A legend control: a title and rows of (kind, colour, text); kind is "fill",
    "outline", "dashed" or "dot"."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var legend = L.control({position: {{ this.position|tojson }}});
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", "weige-legend");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            legend.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, title: str, rows: list[tuple[str, str, str]], position="bottomright"):
        super().__init__()
        self._name = "Legend"
        self.position = position
        self.html = _legend_html(title, rows)


def _legend_html(title: str, rows) -> str:
    parts = [f"<h4>{escape(str(title))}</h4>"]
    for kind, colour, text in rows:
        parts.append(
            f'<div class="weige-key"><i class="key-{escape(kind)}" '
            f'style="--key: {escape(colour)}"></i>{escape(str(text))}</div>'
        )
    return "".join(parts)
