"""folium elements for layers the browser fetches from the app (maps/static/maps/layers.js).

`RemoteLayer` is a folium Layer, so LayerControl lists it: as an overlay (a check box) or,
with ``overlay=False``, as one of a set of exclusive choices (radio buttons; e.g. grids or
micro-grids). Its features are never inlined in the page: the browser asks `url` for the
visible box at the current zoom. `Legend` is a map control with coloured keys and text;
`StatusLine` is where the layers say "loading", "zoom in to see …" or how many incidents
they hold.
"""

from html import escape

from branca.element import MacroElement
from django.templatetags.static import static
from folium.elements import JSCSSMixin
from folium.map import Layer
from folium.plugins import HeatMap
from folium.template import Template

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
    the layer whose first drawing this one waits for (at most 1.5 s) before fetching."""

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
        }
        self.default_js = [("weige_layers", static("maps/layers.js"))]
        self.default_css = [("weige_maps_css", static("maps/maps.css"))]
        if style == "heat":
            self.default_js = [*HeatMap.default_js, *self.default_js]


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
