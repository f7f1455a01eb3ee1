"""Map elements of our own (folium MacroElements that need nothing but Leaflet)."""

from folium.elements import MacroElement
from folium.template import Template


class PointPicker(MacroElement):
    """Click the map to pick a point: a marker moves there and the form inputs with ids
    `lon_input` and `lat_input` get its coordinates (6 decimals, about 0.1 m), the select
    `crs_input` is set to the map's coordinate system `crs` ("wgs84", or "gcj02" on a GCJ-02
    basemap, see maps.basemaps), and each changed input fires a "change" event.

    Typing into the inputs moves the marker too when the selected CRS is the map's (other
    CRSs are converted by the server, not in the browser). `point` is the initial (lon, lat)
    in the map's coordinate system, if any.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var lon = document.getElementById({{ this.lon_input|tojson }});
            var lat = document.getElementById({{ this.lat_input|tojson }});
            var crs = document.getElementById({{ this.crs_input|tojson }});
            var marker = null;
            function place(latlng) {
                if (marker === null) {
                    marker = L.marker(latlng).addTo(map);
                } else {
                    marker.setLatLng(latlng);
                }
            }
            {% if this.point %}place([{{ this.point[1] }}, {{ this.point[0] }}]);{% endif %}
            function set(input, value) {
                if (input && input.value !== value) {
                    input.value = value;
                    input.dispatchEvent(new Event("change", {bubbles: true}));
                }
            }
            map.on("click", function (e) {
                place(e.latlng);
                set(crs, {{ this.crs|tojson }});
                set(lon, e.latlng.lng.toFixed(6));
                set(lat, e.latlng.lat.toFixed(6));
            });
            function typed() {
                var x = parseFloat(lon && lon.value), y = parseFloat(lat && lat.value);
                if ((!crs || crs.value === {{ this.crs|tojson }}) && isFinite(x) && isFinite(y)
                        && Math.abs(x) <= 180 && Math.abs(y) <= 90) {
                    place([y, x]);
                }
            }
            [lon, lat, crs].forEach(function (input) {
                if (input) { input.addEventListener("input", typed); }
            });
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self,
        lon_input: str = "id_lon",
        lat_input: str = "id_lat",
        crs_input: str = "id_crs",
        point: tuple[float, float] | None = None,
        crs: str = "wgs84",
    ):
        super().__init__()
        self._name = "PointPicker"
        self.lon_input = lon_input
        self.lat_input = lat_input
        self.crs_input = crs_input
        self.point = point
        self.crs = crs
