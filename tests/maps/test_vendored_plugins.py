"""folium's MarkerCluster, HeatMap and Fullscreen plugins load from the vendored copies."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import folium
import folium.plugins
import pytest
from django.contrib.staticfiles import finders

from maps.assets import LOCAL_ASSETS, foreign_urls, render_fragment
from maps.bundles import static_files

VENDOR = Path(__file__).resolve().parents[2] / "maps" / "static" / "vendor"
PLUGIN_ASSETS = {
    "markerclusterjs": "vendor/leaflet.markercluster-1.1.0/leaflet.markercluster.js",
    "markerclustercss": "vendor/leaflet.markercluster-1.1.0/MarkerCluster.css",
    "markerclusterdefaultcss": "vendor/leaflet.markercluster-1.1.0/MarkerCluster.Default.css",
    "leaflet-heat.js": "vendor/leaflet.heat-0.2.0/leaflet_heat.min.js",
    "Control.Fullscreen.js": "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.js",
    "Control.FullScreen.css": "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.css",
}
CSS_URL_RE = re.compile(r"""url\(\s*['"]?([^'")]+?)['"]?\s*\)""")


def plugin_map() -> folium.Map:
    fmap = folium.Map(location=[30.605, 104.005], tiles=None)
    cluster = folium.plugins.MarkerCluster().add_to(fmap)
    for i in range(5):
        folium.Marker([30.6 + i * 0.001, 104.0 + i * 0.001]).add_to(cluster)
    folium.plugins.HeatMap([[30.6, 104.0, 1.0], [30.601, 104.002, 0.5]]).add_to(fmap)
    folium.plugins.Fullscreen().add_to(fmap)
    return fmap


def page_of(fragment) -> str:
    return f"{fragment.styles}\n{fragment.head}\n{fragment.html}\n{fragment.script}"


def test_the_plugin_assets_are_the_ones_folium_names():
    plugins = (folium.plugins.MarkerCluster, folium.plugins.HeatMap, folium.plugins.Fullscreen)
    names = {name for plugin in plugins for name, _url in plugin.default_js + plugin.default_css}
    assert names == set(PLUGIN_ASSETS)
    for name, path in PLUGIN_ASSETS.items():
        assert LOCAL_ASSETS[name] == path


def test_a_map_with_the_plugins_loads_everything_from_the_app():
    page = page_of(render_fragment(plugin_map(), allowed_tile_hosts=()))
    assert foreign_urls(page) == []
    files = static_files(page)
    for path in PLUGIN_ASSETS.values():
        assert path in files, path
    for path in files:
        assert finders.find(path), path
    # and the plugins are used by the map's script
    assert "L.markerClusterGroup(" in page
    assert "L.heatLayer(" in page
    assert "L.control.fullscreen(" in page


def test_the_same_map_rendered_by_folium_alone_would_use_cdns():
    urls = foreign_urls(plugin_map().get_root().render())
    assert any("leaflet.markercluster" in url for url in urls)
    assert any("leaflet_heat.min.js" in url for url in urls)
    assert any("leaflet.fullscreen" in url for url in urls)


def vendored_css() -> list[Path]:
    return sorted(VENDOR.rglob("*.css"))


def test_there_is_vendored_css_to_check():
    names = {path.name for path in vendored_css()}
    assert {"MarkerCluster.css", "MarkerCluster.Default.css", "Control.FullScreen.css"} <= names
    assert "leaflet.css" in names


@pytest.mark.parametrize("css", vendored_css(), ids=lambda p: str(p.relative_to(VENDOR)))
def test_vendored_css_references_only_shipped_files(css):
    for ref in CSS_URL_RE.findall(css.read_text(encoding="utf-8")):
        if ref.startswith(("data:", "#")):  # inline data; IE's behavior: url(#default#VML)
            continue
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"{css.name} loads {ref}"
        assert (css.parent / parts.path).resolve().is_file(), f"{css.name}: {ref} is missing"


def test_the_fullscreen_icon_its_css_needs_is_shipped():
    css = (VENDOR / "leaflet.fullscreen-3.0.0" / "Control.FullScreen.css").read_text()
    assert "url(icon-fullscreen.svg)" in css
    assert finders.find("vendor/leaflet.fullscreen-3.0.0/icon-fullscreen.svg")


def test_licences_are_shipped_and_no_source_maps_are_named():
    for path in (
        "vendor/leaflet.markercluster-1.1.0/MIT-LICENCE.txt",
        "vendor/leaflet.heat-0.2.0/LICENSE",
        "vendor/leaflet.fullscreen-3.0.0/LICENSE",
    ):
        assert finders.find(path), path
    for path in PLUGIN_ASSETS.values():
        with open(finders.find(path), encoding="utf-8") as f:
            assert "sourceMappingURL" not in f.read(), path
