"""folium maps load everything from the app: vendored assets, no CDN, no tile server."""

import folium
import folium.plugins
import pytest
from django.contrib.staticfiles import finders

from maps.assets import (
    LOCAL_ASSETS,
    ForeignAsset,
    foreign_urls,
    render_fragment,
    use_local_assets,
)
from maps.builders import Boundary, incident_map
from maps.bundles import static_files

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[104.0, 30.6], [104.01, 30.6], [104.01, 30.605], [104.0, 30.605], [104.0, 30.6]]
    ],
}


def page_of(fragment) -> str:
    return f"{fragment.styles}\n{fragment.head}\n{fragment.html}\n{fragment.script}"


def test_rendered_map_names_no_other_host():
    fragment = render_fragment(incident_map((104.005, 30.603), [Boundary("X", "x", SQUARE)]))
    page = page_of(fragment)
    assert foreign_urls(page) == []
    assert static_files(page) == [
        "weige/site.css",
        "vendor/leaflet-1.9.3/leaflet.css",
        "vendor/leaflet-1.9.3/leaflet.js",
    ]
    # nothing in this map's script uses jQuery, so the page does not load it
    assert "$(" not in fragment.script
    assert "jquery" not in page
    for dropped in ("bootstrap", "awesome-markers", "fontawesome", "glyphicons"):
        assert dropped not in page


def test_the_same_map_rendered_standalone_by_folium_would_use_cdns():
    """The check above could fail: folium's own rendering names CDN hosts."""
    fmap = incident_map((104.005, 30.603))
    assert any("cdn.jsdelivr.net" in url for url in foreign_urls(fmap.get_root().render()))


def test_every_local_asset_and_licence_is_shipped():
    for path in LOCAL_ASSETS.values():
        assert finders.find(path), path
    for path in (
        "vendor/leaflet-1.9.3/LICENSE",
        "vendor/leaflet-1.9.3/images/marker-icon.png",
        "vendor/leaflet-1.9.3/images/layers.png",
        "vendor/jquery-3.7.1/LICENSE.txt",
        "vendor/README.md",
    ):
        assert finders.find(path), path


def test_vendored_files_name_no_source_map():
    for path in LOCAL_ASSETS.values():
        with open(finders.find(path), encoding="utf-8") as f:
            assert "sourceMappingURL" not in f.read(), path


def test_folium_class_defaults_are_left_alone():
    use_local_assets(folium.Map(tiles=None))
    assert dict(folium.Map.default_js)["leaflet"].startswith("https://")


def test_fragment_leaves_out_folium_page_wide_styles():
    fmap = incident_map((104.005, 30.603), height=280)
    fragment = render_fragment(fmap)
    assert "html, body" not in fragment.head
    assert "position:absolute" not in fragment.head.replace(" ", "")
    assert f"#{fmap.get_name()} {{position: relative; width: 100.0%; height: 280.0px;" in (
        fragment.head
    )
    assert f'id="{fmap.get_name()}"' in fragment.html
    # the scripts load in the head, after the map's Leaflet switches (which Leaflet reads
    # as it loads), so the page is laid out once, with the map; the page's and the map's
    # stylesheets in one file (maps.bundles), its one script as it is; the body has the
    # map's own script alone
    assert "<script src=" not in fragment.styles + fragment.script
    assert fragment.styles.startswith(
        '<link rel="stylesheet" href="/maps/bundle.css?f=site_css,leaflet_css&amp;v='
    )
    assert fragment.styles.count("<link") == 1 and fragment.head.count("<script src=") == 1
    assert fragment.head.endswith('<script src="/static/vendor/leaflet-1.9.3/leaflet.js"></script>')
    assert fragment.head.index("L_NO_TOUCH = false") < fragment.head.index("leaflet.js")
    assert fragment.script.startswith("<script>\n") and fragment.script.endswith("</script>")
    assert f"var {fmap.get_name()} = L.map(" in fragment.script


def test_a_tile_layer_on_another_host_is_refused():
    with pytest.raises(ForeignAsset, match="openstreetmap"):
        render_fragment(folium.Map(location=[30.6, 104.0]))


def test_a_tile_layer_served_by_the_app_is_kept():
    fmap = folium.Map(location=[30.6, 104.0], tiles="/tiles/{z}/{x}/{y}.png", attr="local")
    page = page_of(render_fragment(fmap))
    assert "/tiles/{z}/{x}/{y}.png" in page and foreign_urls(page) == []


def test_awesome_marker_icons_are_refused():
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    folium.Marker([30.6, 104.0], icon=folium.Icon(color="red")).add_to(fmap)
    with pytest.raises(ForeignAsset, match="awesome-markers"):
        render_fragment(fmap)


def test_a_plugin_asset_without_local_copy_is_refused_by_name():
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    folium.plugins.MeasureControl().add_to(fmap)
    with pytest.raises(ForeignAsset, match="leaflet_measure_js"):
        render_fragment(fmap)


def test_popups_keep_working_on_the_vendored_jquery():
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    folium.CircleMarker([30.6, 104.0], popup=folium.Popup("<b>#1</b>")).add_to(fmap)
    page = page_of(render_fragment(fmap))
    assert "$(`" in page  # folium builds popup content with jQuery
    assert "vendor/jquery-3.7.1/jquery.min.js" in static_files(page)
    assert foreign_urls(page) == []


def test_foreign_urls_tells_the_app_from_other_hosts():
    html = (
        '<script src="https://cdn.example.com/a.js"></script><a href="http://testserver/x">'
        "<img src='/static/y.png'>"
    )
    assert foreign_urls(html) == ["https://cdn.example.com/a.js"]


def test_what_a_map_shows_is_never_evaluated_as_a_template():
    fmap = folium.Map(location=[30.6, 104.0], tiles=None)
    name = "{{ 7*7 }} {% if true %}X{% endif %} {# c #}"
    point = {"type": "Point", "coordinates": [104.0, 30.6]}
    feature = {"type": "Feature", "geometry": point, "properties": {"name": name}}
    folium.GeoJson(
        {"type": "FeatureCollection", "features": [feature]},
        tooltip=folium.GeoJsonTooltip(["name"]),
    ).add_to(fmap)
    folium.CircleMarker([30.6, 104.0], popup=folium.Popup(name), tooltip=name).add_to(fmap)
    page = page_of(render_fragment(fmap))
    assert page.count("{{ 7*7 }}") == 3 and "49 X" not in page  # what Jinja would make
    assert page.count("{% if true %}X{% endif %} {# c #}") == 3
