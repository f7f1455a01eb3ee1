"""The map pages (maps.views) and their builders (maps.district_maps, maps.remote)."""

import json
import re
from html import escape

import pytest
from django.test import Client

from grids.models import Workstation
from maps import district_maps
from maps.assets import foreign_urls, render_fragment
from maps.bundles import static_files
from maps.district_maps import LayerSpec
from maps.remote import early_request
from tests.conftest import rect


@pytest.fixture
def territory(small_territory, seeded):
    return small_territory


@pytest.fixture
def admin(client, territory, user_in):
    client.force_login(user_in(territory["district"], "district_admin", username="admin"))
    return client


def inlined_names(page: str) -> list[str]:
    """The unit names in the GeoJSON a page inlines (folium's geo_json_…_add(data))."""
    data = re.findall(r"geo_json_\w+_add\((\{.*?\})\);", page)
    return [f["properties"]["name"] for d in data for f in json.loads(d)["features"]]


def remote_layers(page: str) -> list[dict]:
    """The options of every RemoteLayer in a page."""
    return [json.loads(m) for m in re.findall(r"weige\.remoteLayer\((\{.*?\})\);", page)]


@pytest.mark.parametrize(
    ("url", "layers"),
    [
        ("/maps/coverage/", ["grids", "microgrids", "problems", "courtyards", "workstations"]),
        ("/maps/hazards/", ["incidents", "heat", "density"]),
        ("/maps/workstations/", ["workstation_units", "workstations"]),
    ],
)
def test_each_map_page_carries_its_layers_and_nothing_foreign(admin, url, layers):
    response = admin.get(url)
    assert response.status_code == 200
    page = response.text
    found = remote_layers(page)
    assert [layer["name"] for layer in found] == layers
    assert all(layer["url"].startswith("/maps/layers/") for layer in found)
    assert foreign_urls(page) == []
    assert "L.control.layers" in page and "L.control.scale" in page
    assert 'L.DomUtil.create("div", "weige-legend")' in page
    assert "L.control.fullscreen" in page
    for layer in found:  # the download links: the same URLs, whole layer
        assert layer["url"].replace("&", "&amp;") in page
    assert "download=1" in page


def test_the_hazard_download_is_named_for_what_it_holds(admin):
    """The download has every incident on its own, so its link does not say "clustered"."""
    page = admin.get("/maps/hazards/").text
    links = re.findall(r'<a href="([^"]+download=1)" download>([^<]+)</a>', page)
    assert [label for _url, label in links] == ["incidents", "open incidents per grid"]
    assert links[0][0].startswith("/maps/layers/incidents.geojson")


def test_micro_grids_are_an_exclusive_choice_shown_from_zoom_14(admin):
    layers = {layer["name"]: layer for layer in remote_layers(admin.get("/maps/coverage/").text)}
    assert layers["microgrids"]["minZoom"] == 14
    assert layers["microgrids"]["url"] == "/maps/layers/units.geojson?kind=microgrid"
    page = admin.get("/maps/coverage/").text
    base = re.search(r"base_layers : \{(.*?)\}", page, re.S).group(1)
    assert '"grids"' in base and '"micro-grids"' in base  # radio buttons, not check boxes


def test_hazard_filters_go_into_the_layer_urls(admin):
    page = admin.get(
        "/maps/hazards/", {"major": "C01", "overdue": "1", "state": ["reported", "accepted"]}
    ).text
    urls = [layer["url"] for layer in remote_layers(page)]
    assert urls[0] == (
        "/maps/layers/incidents.geojson?major=C01&state=reported&state=accepted&overdue=1"
    )
    assert all("major=C01" in url for url in urls)
    assert '<option value="1" selected>' in page


def test_a_grid_chief_lands_on_their_grid_and_cannot_open_another(client, territory, user_in):
    client.force_login(user_in(territory["grid1"], "grid_chief", username="chief1"))
    response = client.get("/maps/")
    assert response.status_code == 302
    assert response["Location"] == f"/maps/units/{territory['grid1'].code}/"
    page = client.get(response["Location"]).text
    names = inlined_names(page)
    assert territory["micro11"].name in names and territory["micro12"].name in names
    [incidents] = remote_layers(page)
    assert incidents["url"] == f"/maps/layers/incidents.geojson?unit={territory['grid1'].code}"
    assert client.get(f"/maps/units/{territory['grid2'].code}/").status_code == 404


def test_the_unit_map_shows_children_neighbours_and_staff(admin, territory, user_in):
    user_in(territory["grid1"], "fulltime_member", username="钱网格员")
    page = admin.get(f"/maps/units/{territory['grid1'].code}/").text
    assert "钱网格员" in page and "full-time grid member" in page
    assert sorted(inlined_names(page)) == sorted(
        [territory["grid2"].name, territory["micro11"].name, territory["micro12"].name]
        + [territory["grid1"].name]
    )


def test_names_on_a_map_are_shown_as_they_are_never_run_as_templates(admin, territory):
    """folium's library (branca) would render a map element's output a second time as a
    Jinja template, evaluating "{{ … }}" in the data on the server (maps.assets)."""
    micro = territory["micro11"]
    micro.name = "{{ 7*7 }}微网格{% if true %}!{% endif %}"
    micro.save(update_fields=["name"])
    page = admin.get(f"/maps/units/{territory['grid1'].code}/").text
    assert micro.name in inlined_names(page)
    assert "49微网格" not in page


def test_everyone_else_lands_on_the_coverage_map(admin):
    assert admin.get("/maps/")["Location"] == "/maps/coverage/"


def test_anonymous_users_are_sent_to_log_in(territory):
    response = Client().get("/maps/coverage/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_pilot_and_other_streets_side_by_side(admin, make_unit, territory):
    other_street = make_unit(
        "street", "510199002000", rect(104.1, 30.6, 104.2, 30.7), parent=territory["district"]
    )
    station = Workstation.objects.create(
        name="花园工作站", location="POINT(104.005 30.605)", pilot=True
    )
    station.units.add(territory["grid1"])
    page = admin.get("/maps/workstations/").text
    table = page[page.index('<table class="comparison">') :]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S) for r in rows[1:]]
    assert cells[0][:4] == ["pilot streets", "yes", "2", "600"]
    assert cells[1][:4] == ["other streets", "no", "0", "0"]
    by_name = {c[0]: c for c in cells[2:]}
    assert by_name[territory["street"].name][1] == "yes"
    assert by_name[other_street.name][1] == "no"


def test_district_map_builder_puts_remote_layers_legend_and_controls():
    fmap = district_maps.district_map(
        [[30.6, 104.0], [30.7, 104.1]],
        [
            LayerSpec("a", "/maps/layers/units.geojson?kind=grid", "units", "网格", overlay=False),
            LayerSpec("h", "/maps/layers/incident_heat.geojson", "heat", "热力", show=False),
        ],
        district_maps.coverage_legend(),
    )
    fragment = render_fragment(fmap)
    script = fragment.script
    assert script.count("weige.remoteLayer(") == 2
    assert "fitBounds" in script and "weige.statusControl" in script
    assert "fully staffed" in script  # the legend
    assert "maps/maps.css" in static_files(fragment.styles)
    head = fragment.styles + fragment.head
    assert "maps/layers.js" in static_files(fragment.head)
    assert "vendor/leaflet.heat-0.2.0/leaflet_heat.min.js" in static_files(fragment.head)
    assert foreign_urls(str(head) + str(script) + str(fragment.html)) == []


def test_a_page_opened_at_a_view_asks_for_its_main_layer_there_first(admin, territory):
    page = admin.get("/maps/coverage/?lat=30.605&lon=104.01&zoom=15").text
    (early,) = early_requests(page)
    assert early["name"] == "grids" and early["view"] == [30.605, 104.01, 15]
    assert "bounds" not in early
    wide = early["wide"]
    assert wide["zoom"] == wide["low"] == wide["high"] == 15
    assert f'href="{escape(wide["url"])}"' in page
    # the box around the view for a map 1,100 px wide and 600 high, padded by a fifth
    south, west, north, east = wide["box"]
    assert south < 30.605 < north and west < 104.01 < east
    assert (east - west) * 256 * 2**15 / 360 == pytest.approx(1100 * 1.4)
    bbox = ",".join(f"{v:.6f}" for v in (west, south, east, north))
    assert wide["url"] == f"{early['url']}&bbox={bbox}&zoom=15"
    assert [o["name"] for o in remote_layers(page) if o["early"]] == ["grids"]
    head = page[: page.index("</head>")]
    assert head.index("weige.early") < head.index('<link rel="stylesheet"')


def test_remote_layer_refuses_an_unknown_style():
    from maps.remote import RemoteLayer

    with pytest.raises(ValueError, match="unknown layer style"):
        RemoteLayer("/x", "pie", "x", "x", labels={})


def early_requests(page: str) -> list[dict]:
    """The facts of every early request in a page (maps.remote.EARLY_SCRIPT)."""
    return [json.loads(m) for m in re.findall(r"\}\)\((\{.*?\})\);\n</script>", page)]


@pytest.mark.parametrize(
    ("url", "main"),
    [("/maps/coverage/", "grids"), ("/maps/workstations/", "workstation_units")],
)
def test_a_page_fitted_to_the_scope_asks_for_its_main_layer_first(admin, territory, url, main):
    page = admin.get(url).text
    (early,) = early_requests(page)
    layer = next(o for o in remote_layers(page) if o["name"] == main)
    # the units layer's text sequence is asked for by address (a preload sends no Accept)
    wanted = layer["url"] + ("&format=geojson-seq" if main == "grids" else "")
    assert early["name"] == main and early["url"] == wanted
    assert layer["early"] is True
    assert [o["name"] for o in remote_layers(page) if o["early"]] == [main]
    assert early["height"] == 600 and early["bands"] == [10, 12, 14, 16]
    # the scope's bounds, the ones the map is fitted to
    (south, west), (north, east) = early["bounds"]
    assert f"fitBounds(\n                [[{south}, {west}], [{north}, {east}]]" in page
    # before every stylesheet and script of the page: nothing holds it back
    head = page[: page.index("</head>")]
    assert head.index("weige.early") < head.index('<link rel="stylesheet"')
    assert head.index("weige.early") < head.index("<script src=")
    # preloaded for a window that gives the content column its full width, first of all
    wide = early["wide"]
    assert wide == early_request(early, 1100)
    assert re.fullmatch(re.escape(early["url"]) + r"[?&]zoom=\d+", wide["url"])
    assert head.index(
        f'<link rel="preload" as="fetch" crossorigin="anonymous" href="{escape(wide["url"])}"'
        ' media="(min-width: 1148px)">'
    ) < head.index("weige.early")
    # the map's scripts load in the head, so the page is laid out once, when the map's own
    # script (after the map's div) builds the map
    body = page[page.index("<body>") :]
    assert "<script src=" not in body
    assert body.index('class="district-map"') < body.index("L.map(")


def test_a_page_of_incidents_asks_nothing_early(admin):
    assert early_requests(admin.get("/maps/hazards/").text) == []


def test_no_early_request_for_a_map_whose_height_is_relative():
    spec = LayerSpec("grids", "/maps/layers/units.geojson?kind=grid", "units", "grids", early=True)
    bounds = [[30.6, 104.0], [30.61, 104.02]]
    fitted = render_fragment(
        district_maps.district_map(bounds, [spec], district_maps.coverage_legend())
    )
    assert "weige.early" in fitted.early
    relative = render_fragment(
        district_maps.district_map(bounds, [spec], district_maps.coverage_legend(), height="100%")
    )
    assert relative.early == ""
    opened = render_fragment(
        district_maps.district_map(
            bounds, [spec], district_maps.coverage_legend(), start=(30.6, 104.0, 15)
        )
    )
    assert "weige.early" in opened.early
    opened_relative = render_fragment(
        district_maps.district_map(
            bounds, [spec], district_maps.coverage_legend(), start=(30.6, 104.0, 15), height="90%"
        )
    )
    assert opened_relative.early == ""


def test_pages_are_sent_gzip_compressed_when_the_browser_accepts_it(admin):
    import gzip

    plain = admin.get("/maps/coverage/")
    assert plain.status_code == 200 and not plain.has_header("Content-Encoding")
    packed = admin.get("/maps/coverage/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    page = gzip.decompress(packed.content).decode()
    assert len(packed.content) < len(page) / 2
    # the same page (CSRF tokens and the like aside): the same layers and map
    assert remote_layers(page) == remote_layers(plain.text)
    assert page.count("<script") == plain.text.count("<script")
