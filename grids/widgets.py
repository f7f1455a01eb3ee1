"""Admin map widget whose scripts and styles are served by the app (no CDN, no tiles)."""

from django.contrib.gis.forms.widgets import OSMWidget


class OfflineMapWidget(OSMWidget):
    """Django's OpenLayers widget with vendored OpenLayers and no tile basemap."""

    template_name = "grids/widgets/offline_map.html"
    default_lon = 104.07
    default_lat = 30.66
    default_zoom = 12

    class Media:
        extend = False  # drop the parent's CDN URLs
        css = {"all": ("vendor/ol-7.2.2/ol.css", "gis/css/ol3.css")}
        js = ("vendor/ol-7.2.2/ol.js", "gis/js/OLMapWidget.js")
