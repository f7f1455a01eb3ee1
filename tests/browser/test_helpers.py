"""The browser-test helpers on a folium map served from the live server's origin: layer
switches, popups and links, and the recorder that assert_clean reads."""

import folium
import pytest
from django.urls import reverse

from maps.assets import render_fragment
from tests.browser.helpers import (
    MARKERS,
    OVERLAY_PATHS,
    assert_clean,
    chromium_executable,
    count_markers,
    count_paths,
    map_names,
    open_popup,
    recorder_of,
    toggle_layer,
    wait_for_count,
)
from tests.conftest import rect

PAGE = "/__browser-test__/"


def layered_map() -> folium.Map:
    """Layer "areas": two squares and a circle with a popup; layer "places": one marker."""
    fmap = folium.Map(location=[30.605, 104.01], zoom_start=15, tiles=None, height=400)
    areas = folium.FeatureGroup(name="areas").add_to(fmap)
    for x0 in (104.000, 104.010):
        square = rect(x0, 30.600, x0 + 0.008, 30.608).__geo_interface__
        folium.GeoJson({"type": "Feature", "geometry": square, "properties": {}}).add_to(areas)
    folium.CircleMarker(
        [30.609, 104.005],
        radius=10,
        fill=True,
        popup=folium.Popup(f'<a href="{reverse("login")}">log in</a>'),
    ).add_to(areas)
    places = folium.FeatureGroup(name="places").add_to(fmap)
    folium.Marker([30.606, 104.015]).add_to(places)
    folium.LayerControl(collapsed=True).add_to(fmap)
    return fmap


def serve(page, body: str, head: str = "") -> None:
    """Answer PAGE on the live server's origin with this HTML (the rest is the server's)."""
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        f"{head}</head><body>{body}</body></html>"
    )
    page.route(f"**{PAGE}", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto(PAGE)


def serve_map(page, fmap: folium.Map) -> None:
    fragment = render_fragment(fmap)
    serve(page, f"{fragment.html}{fragment.script}", head=fragment.styles + fragment.head)


@pytest.fixture
def someone(django_user_model):
    """A login: the app's map pages, and so the files they load, are for logged-in users."""
    return django_user_model.objects.create_user(username="someone", password="pw-123456")


def test_layer_switches_change_what_is_drawn(page_for, someone):
    page = page_for(someone)
    serve_map(page, layered_map())
    wait_for_count(page, OVERLAY_PATHS, 3)
    assert count_markers(page) == 1 and len(map_names(page)) == 1

    toggle_layer(page, "areas")
    wait_for_count(page, OVERLAY_PATHS, 0)
    assert count_markers(page) == 1
    toggle_layer(page, "places")
    wait_for_count(page, MARKERS, 0)
    toggle_layer(page, "areas")
    wait_for_count(page, OVERLAY_PATHS, 3)
    assert count_paths(page) == 3 and count_markers(page) == 0
    assert_clean(page)


def test_a_popup_opens_and_its_link_leads_to_the_page(page_for, someone):
    page = page_for(someone)
    serve_map(page, layered_map())
    wait_for_count(page, OVERLAY_PATHS, 3)
    circle = page.locator(OVERLAY_PATHS).last
    popup = open_popup(circle)
    link = popup.get_by_role("link", name="log in")
    assert link.get_attribute("href") == reverse("login")
    link.click()
    page.wait_for_url(f"**{reverse('login')}")
    assert page.locator("form input[name=username]").is_visible()
    assert_clean(page)


def test_the_recorder_lists_what_went_wrong(page_for):
    page = page_for()
    serve(
        page,
        '<img src="https://tiles.example.com/1/2/3.png">'
        '<img src="/static/weige/no-such-file.png">'
        '<script>console.error("drawn wrong"); console.log("fine");</script>'
        "<script>setTimeout(function () { undefinedFunction(); }, 0);</script>",
    )
    page.wait_for_load_state("load")
    page.wait_for_timeout(100)
    recorder = recorder_of(page)
    assert recorder.foreign_requests == ["GET https://tiles.example.com/1/2/3.png"]
    assert [line.split(": HTTP")[0] for line in recorder.failed_requests] == [
        f"GET {page.url.removesuffix(PAGE)}/static/weige/no-such-file.png"
    ]
    assert any("undefinedFunction is not defined" in line for line in recorder.page_errors)
    assert any(line.startswith("drawn wrong") for line in recorder.console_errors)
    with pytest.raises(AssertionError) as failure:
        assert_clean(page)
    message = str(failure.value)
    assert "request to another host: GET https://tiles.example.com/1/2/3.png" in message
    assert "no-such-file.png: HTTP 404" in message and "drawn wrong" in message
    assert_clean(
        page,
        allow=[r"tiles\.example\.com", "no-such-file", "drawn wrong", "undefinedFunction"],
    )


def test_a_missing_chromium_fails_naming_the_package(monkeypatch):
    monkeypatch.setenv("WEIGE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.fail.Exception, match="install Debian's `chromium` package"):
        chromium_executable()
