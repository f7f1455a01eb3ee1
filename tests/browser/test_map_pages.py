"""The map pages in Chromium: layers drawn from the layer endpoints, switches, popups."""

import datetime
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import caches
from django.utils import timezone

from grids.models import Role, StaffAssignment, StaffMember, Workstation
from incidents.models import Category, Incident
from incidents.services.intake import Report, report_incident
from maps import layers
from maps.remote import early_request
from tests.browser.helpers import (
    OVERLAY_PATHS,
    assert_clean,
    click_map_at,
    open_popup,
    toggle_layer,
    wait_for_count,
)
from tests.conftest import D2024

DRAWN = "document.querySelector('.folium-map').dataset"


@pytest.fixture(autouse=True)
def fresh_outlines():
    caches["maps"].clear()
    layers.forget()
    yield
    layers.forget()


def wait_drawn(page, key: str, expected: int | None = None, timeout: float = 10_000) -> int:
    """Wait until the remote layer `key` (camel case, e.g. "Grids") has drawn, and, when
    `expected` is given, drawn that many features; return the count."""
    condition = f"{DRAWN}.drawn{key} !== undefined"
    if expected is not None:
        condition = f"{DRAWN}.drawn{key} === '{expected}'"
    page.wait_for_function(condition, timeout=timeout)
    return int(page.evaluate(f"{DRAWN}.drawn{key}"))


def assign(unit, role, name):
    member = StaffMember.objects.create(name=name)
    StaffAssignment.objects.create(member=member, unit=unit, role=role, start=D2024)


@pytest.fixture
def city(small_territory, seeded, user_in):
    t = small_territory
    assign(t["grid1"], Role.GRID_CHIEF, "李网格长")
    assign(t["grid1"], Role.FULLTIME_MEMBER, "钱网格员")
    station = Workstation.objects.create(
        name="花园工作站", location="POINT(104.002 30.6085)", pilot=True
    )
    station.units.add(t["grid1"])
    category = Category.objects.get(code="C0101")
    incidents = [
        report_incident(Report(lon=lon, lat=lat, category=category, source="patrol"))
        for lon, lat in [(104.004, 30.607), (104.0041, 30.6071), (104.016, 30.602)]
    ]
    fire = Category.objects.get(code="E0404")
    incidents.append(
        report_incident(Report(lon=104.006, lat=30.603, category=fire, source="patrol"))
    )
    Incident.objects.filter(pk=incidents[0].pk).update(
        deadline=timezone.now() - datetime.timedelta(hours=3)
    )
    admin = user_in(t["district"], "district_admin", username="admin")
    return {**t, "incidents": incidents, "admin": admin}


def test_coverage_map_grids_micro_grids_and_popups(page_for, city):
    page = page_for(city["admin"])
    page.goto("/maps/coverage/?lat=30.605&lon=104.01&zoom=16")  # the community
    assert wait_drawn(page, "Grids", 2) == 2
    wait_drawn(page, "Workstations", 1)
    # two grids and the workstation's circle
    wait_for_count(page, OVERLAY_PATHS, 3)
    # grid 1 has a chief and 1 member for 300 households: fully staffed; grid 2 no chief
    assert page.locator(f"{OVERLAY_PATHS}[fill='#c62828']").count() == 1
    grid1 = page.locator(f"{OVERLAY_PATHS}[fill='#2e7d32']")
    popup = open_popup(grid1)
    assert city["grid1"].name in popup.inner_text()
    # the map carries each grid's summary; its staff and households come when it opens
    popup.get_by_text("李网格长").wait_for()
    assert "households\t300" in popup.inner_text()
    link = popup.locator("a").first
    assert link.get_attribute("href") == f"/maps/units/{city['grid1'].code}/"
    page.keyboard.press("Escape")
    toggle_layer(page, "micro-grids")
    assert wait_drawn(page, "Microgrids", 4) == 4
    wait_for_count(page, OVERLAY_PATHS, 5)  # four micro-grids and the workstation
    page.evaluate(f"delete {DRAWN}.drawnWorkstations")
    toggle_layer(page, "workstations")  # off
    wait_for_count(page, OVERLAY_PATHS, 4)
    assert page.locator(".weige-legend").inner_text().startswith("Staffing coverage")
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator(".leaflet-control-zoom-fullscreen").count() == 1
    assert_clean(page)


def test_hazard_map_clusters_heat_choropleth_and_filters(page_for, city):
    page = page_for(city["admin"])
    page.goto("/maps/hazards/?lat=30.605&lon=104.01&zoom=17")
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    # the two incidents 10 m apart are one cluster (one of them overdue), two stand alone
    assert wait_drawn(page, "Incidents", 3) == 3
    cluster = page.locator(".weige-cluster")
    assert cluster.count() == 1 and cluster.inner_text().strip() == "2"
    assert page.locator(".weige-cluster-late").count() == 1
    wait_for_count(page, OVERLAY_PATHS, 2)
    # closer in, every incident is its own circle; the overdue one is red and links
    page.evaluate(f"delete {DRAWN}.drawnIncidents")
    page.evaluate(f"{map_name}.setView([30.60705, 104.00405], 19)")
    wait_drawn(page, "Incidents")
    late = page.locator(f"{OVERLAY_PATHS}[fill='#d50000']")
    late.wait_for()
    popup = open_popup(late, force=True)
    href = popup.locator("a").first.get_attribute("href")
    assert href == f"/incidents/{city['incidents'][0].pk}/"
    page.keyboard.press("Escape")
    page.evaluate(f"{map_name}.setView([30.605, 104.01], 17)")
    toggle_layer(page, "heat map")
    wait_drawn(page, "Heat")
    assert page.locator("canvas.leaflet-heatmap-layer").count() == 1
    assert page.locator(".weige-cluster").count() == 0  # the markers are gone
    toggle_layer(page, "open incidents per grid")
    assert wait_drawn(page, "Density", 2) == 2
    page.select_option("select[name=police_relevant]", "1")
    page.click("form.map-filters button[type=submit]")
    page.wait_for_url("**police_relevant=1**")
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    page.evaluate(f"{map_name}.setView([30.605, 104.01], 17)")
    assert wait_drawn(page, "Incidents", 1) == 1
    assert_clean(page)


def test_workstation_map_and_pilot_table(page_for, city):
    page = page_for(city["admin"])
    page.goto("/maps/workstations/?lat=30.605&lon=104.01&zoom=16")
    assert wait_drawn(page, "WorkstationUnits", 1) == 1
    assert wait_drawn(page, "Workstations", 1) == 1
    dot = page.locator(f"{OVERLAY_PATHS}[fill='#00897b']").last
    popup = open_popup(dot, force=True)
    text = popup.inner_text()
    assert "花园工作站" in text and "fine-grid pilot" in text
    # the station's facts, units and staff are fetched when the popup opens
    grid_link = popup.locator("a", has_text=city["grid1"].name)
    grid_link.wait_for()
    text = popup.inner_text()
    assert "open incidents\t3" in text or "open incidents 3" in text.replace("\t", " ")
    assert grid_link.get_attribute("href") == f"/maps/units/{city['grid1'].code}/"
    assert "李网格长" in popup.inner_text()
    table = page.locator("table.comparison").inner_text()
    assert "pilot streets" in table and "other streets" in table
    assert_clean(page)


def test_a_grid_chief_lands_on_the_map_of_their_grid(page_for, city, user_in):
    chief = user_in(city["grid1"], "grid_chief", username="chief1")
    page = page_for(chief)
    page.goto("/maps/")
    assert page.url.endswith(f"/maps/units/{city['grid1'].code}/")
    # grid 1 and its two micro-grids (grid 2, outside the chief's scope, is not shown) ...
    assert wait_drawn(page, "Incidents") >= 1
    # ... and its three incidents, as circles or in clusters
    circles = page.locator(OVERLAY_PATHS).count() - 3
    clustered = sum(int(t) for t in page.locator(".weige-cluster").all_inner_texts())
    assert circles + clustered == 3
    assert "钱网格员" in page.locator("table.units").inner_text()
    assert_clean(page)


def test_a_large_answer_is_drawn_in_chunks_and_a_newer_one_replaces_it(page_for, city):
    """1,234 grids (a first chunk of 100, then chunks of 500): the first chunk shows before
    the layer reports itself drawn, all of them end up drawn, popups are built on opening,
    and the next answer replaces the drawing instead of adding to it."""
    answers = []

    def squares(n: int, kind: str = "grid") -> str:
        features = []
        for i in range(n):
            # 40 a row, around the view's centre
            x, y = 104.006 + (i % 40) * 0.0002, 30.602 + (i // 40) * 0.0002
            ring = [[x, y], [x + 0.00016, y], [x + 0.00016, y + 0.00016], [x, y + 0.00016], [x, y]]
            features.append(
                {
                    "type": "Feature",
                    "id": f"G{i}",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "code": f"G{i}",
                        "name": f"网格{i}",
                        "households": 100,
                        "population": 250,
                        "chief": "",
                        "members": 0,
                        "members_per_100_households": 0,
                        "liaison": "",
                        "building_heads": 0,
                        "band": "missing",
                        "problems": 0,
                    },
                }
            )
        return json.dumps({"type": "FeatureCollection", "kind": kind, "features": features})

    def answer(route):
        n = 1234 if not answers else 7
        answers.append(n)
        route.fulfill(status=200, content_type="application/json", body=squares(n))

    page = page_for(city["admin"])
    page.route("**/maps/layers/units.geojson?kind=grid*", answer)
    page.add_init_script(
        """window.__pathsWhenDrawn = null;
        window.__firstChunk = null;
        // from the start: the early answer may be drawn before DOMContentLoaded
        const paths = () => document.querySelectorAll(".leaflet-overlay-pane path").length;
        new MutationObserver(() => {
            const map = document.querySelector(".folium-map");
            if (window.__pathsWhenDrawn === null && map.dataset.drawnGrids !== undefined) {
                window.__pathsWhenDrawn = paths();
            }
        }).observe(document, {
            attributes: true, subtree: true, attributeFilter: ["data-drawn-grids"],
        });
        new MutationObserver(() => {
            const n = paths();
            if (window.__firstChunk === null && n > 0) { window.__firstChunk = n; }
        }).observe(document, {childList: true, subtree: true});"""
    )
    page.goto("/maps/coverage/?lat=30.605&lon=104.01&zoom=16")
    assert wait_drawn(page, "Grids", 1234) == 1234
    # the first drawing seen held the first chunk of grids (plus at most the workstation)
    assert 20 <= page.evaluate("window.__firstChunk") <= 21
    assert page.evaluate("window.__pathsWhenDrawn") >= 1234
    # the last grid (row 30, column 33) was in the last chunk
    click_map_at(page, 104.006 + 33 * 0.0002 + 0.00008, 30.602 + 30 * 0.0002 + 0.00008)
    popup = page.locator(".leaflet-popup-content").last
    popup.wait_for(state="visible")
    assert "网格1233" in popup.inner_text() and "G1233" in popup.inner_text()
    page.keyboard.press("Escape")
    # a move out of the box asked for asks again: the 7 grids of the new answer replace
    # the 1,234
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    page.evaluate(f"delete {DRAWN}.drawnGrids")
    page.evaluate(f"{map_name}.panBy([900, 0], {{animate: false}})")
    assert wait_drawn(page, "Grids", 7) == 7
    assert page.locator(f"{OVERLAY_PATHS}[fill='#c62828']").count() == 7
    assert answers == [1234, 7]
    assert_clean(page)


@pytest.mark.parametrize("early_answer_in", [False, True])
def test_a_view_without_units_says_so(page_for, city, early_answer_in):
    """Also when the empty answer is drawn before the page has built its status line."""
    page = page_for(city["admin"])
    url = "/maps/coverage/?lat=31.5&lon=105.0&zoom=16"  # far from the territory
    if early_answer_in:
        open_with_early_answer_in(page, url)
    else:
        page.goto(url)
    assert wait_drawn(page, "Grids") == 0
    status = page.locator(".weige-status")
    status.locator("[data-layer='grids']").wait_for()
    assert status.locator("[data-layer='grids']").inner_text() == "grids: none in this view"
    assert_clean(page)


def regrid(page, move: str, expected: int | None = None) -> int:
    """Run `move` (JavaScript that moves the map) and wait for the grids' next drawing."""
    page.evaluate(f"delete {DRAWN}.drawnGrids")
    page.evaluate(move)
    return wait_drawn(page, "Grids", expected)


def layer_requests(page, pattern: str) -> list[str]:
    """The URLs of the requests `page` makes whose URL contains `pattern` (filled as the
    page asks)."""
    seen = []
    page.on("request", lambda request: pattern in request.url and seen.append(request.url))
    return seen


# Where and when the first path went into a map's overlay pane: whether the map's layer
# control (built by the page's script after its layers) existed yet, and whether the page's
# own script was still running.
FIRST_PATH = """
window.__firstPath = null;
const appendOfThePage = Element.prototype.appendChild;
Element.prototype.appendChild = function (child) {
    const added = appendOfThePage.call(this, child);
    if (window.__firstPath === null && child instanceof SVGPathElement
            && this.closest(".leaflet-overlay-pane")) {
        window.__firstPath = {
            control: document.querySelector(".leaflet-control-layers") !== null,
            inScript: document.currentScript !== null,
        };
    }
    return added;
};
"""


def open_with_early_answer_in(page, url: str) -> None:
    """Open `url` with the page's scripts held back until its early request has its answer
    (a slow line for scripts, a fast server): the answer is in before the map's script runs."""
    held, released = [], []

    def hold(route):
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/maps/bundle\.js|/static/.+\.js"), hold)
    page.goto(url, wait_until="commit")
    # polled: the page paints no frame while its head waits for the scripts
    page.wait_for_function(
        "Object.values((window.weige || {}).early || {}).some(e => e.got !== null)",
        polling=50,
    )
    assert held  # the answer came first
    released.append(True)
    for route in held:
        route.continue_()
    page.wait_for_load_state("load")


def test_an_early_answer_in_before_the_map_is_built_is_drawn_as_it_is_built(page_for, city):
    """When the grids' early answer is in before the map's script runs, the script draws
    the first grids as it adds the layer, before it builds the map's controls; nothing is
    asked again and the map is complete."""
    page = page_for(city["admin"])
    page.add_init_script(FIRST_PATH)
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    open_with_early_answer_in(page, "/maps/coverage/")
    assert page.evaluate("window.__firstPath") == {"control": False, "inScript": True}
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(asked) == 1 and asked[0].endswith(page.evaluate(f"{DRAWN}.earlyGrids"))
    assert page.locator(".leaflet-control-layers input").count() == 5
    wait_drawn(page, "Workstations", 1)
    # nothing left saying "loading" for the grids
    assert page.locator(".weige-status [data-layer='grids']").count() == 0
    assert_clean(page)


def test_an_early_answer_still_on_its_way_is_drawn_once_the_map_is_built(page_for, city):
    """The other way round (the answer held back until the page has loaded): the grids are
    drawn after the page's script, from the same answer."""
    page = page_for(city["admin"])
    page.add_init_script(FIRST_PATH)
    held = []

    def hold(route):
        held.append(route)

    page.route("**/maps/layers/units.geojson?kind=grid&format=geojson-seq&zoom=*", hold)
    page.goto("/maps/coverage/")
    assert held and page.evaluate("window.__firstPath") is None
    for route in held:
        route.continue_()
    assert wait_drawn(page, "Grids", 2) == 2
    assert page.evaluate("window.__firstPath") == {"control": True, "inScript": False}
    assert page.evaluate(f"{DRAWN}.earlyGrids")
    assert_clean(page)


def test_the_coverage_map_draws_first_what_the_page_asked_for_before_leaflet(page_for, city):
    """Fitted to the district, the page asks for its grids at the top of its head, for the
    zoom Leaflet then opens at, and draws that answer without asking again."""
    page = page_for(city["admin"])
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    page.goto("/maps/coverage/")
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(asked) == 1 and "bbox=" not in asked[0]
    early = page.evaluate(f"{DRAWN}.earlyGrids")
    assert asked[0].endswith(early)
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    assert early.endswith(f"&zoom={page.evaluate(f'{map_name}.getZoom()')}")
    # the other layers still ask by box once the grids are drawn
    wait_drawn(page, "Workstations", 1)
    # the answer holds every grid in scope at this zoom: moves at this zoom ask nothing
    assert regrid(page, f"{map_name}.panBy([900, 300], {{animate: false}})", 2) == 2
    assert len(asked) == 1
    # another zoom asks by box as before
    assert regrid(page, f"{map_name}.setView([30.605, 104.01], {map_name}.getZoom() + 1)") >= 1
    assert len(asked) == 2 and "bbox=" in asked[1]
    assert_clean(page)


REFRESH_TIMERS = """
window.__refreshTimers = [];
const setTimeoutOfThePage = window.setTimeout;
window.setTimeout = function (callback, delay, ...rest) {
    if (typeof callback === "function" && String(callback).includes("_refresh")) {
        window.__refreshTimers.push([delay, document.readyState]);
    }
    return setTimeoutOfThePage.call(this, callback, delay, ...rest);
};
"""


def test_the_first_fetch_waits_for_no_timer(page_for, city):
    """A layer's first fetch goes once the page's script has run (a microtask, which sees
    the view the script set), with no timer; later moves wait for the map to be still."""
    page = page_for(city["admin"])
    page.add_init_script(REFRESH_TIMERS)
    page.goto("/maps/coverage/")
    assert wait_drawn(page, "Grids", 2) == 2
    timers = page.evaluate("window.__refreshTimers")
    assert [delay for delay, state in timers if state == "loading"] == [], timers
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    page.evaluate(f"window.__refreshTimers = []; delete {DRAWN}.drawnGrids")
    page.evaluate(f"{map_name}.setView([30.605, 104.01], {map_name}.getZoom() + 1)")
    assert wait_drawn(page, "Grids") >= 1
    assert 60 in [delay for delay, _state in page.evaluate("window.__refreshTimers")]
    assert_clean(page)


def test_a_small_move_keeps_the_drawing_and_an_open_popup(page_for, city):
    """A view asked for by box: a pan within the padded box asks nothing and keeps an open
    popup (a popup near the edge pans the map to show itself); a pan out of it asks again."""
    page = page_for(city["admin"])
    grids = layer_requests(page, "/maps/layers/units.geojson?kind=grid")

    def asked():  # the boxes asked for (a popup asks for its grid's facts by code)
        return [url for url in grids if "bbox=" in url]

    page.goto("/maps/coverage/?lat=30.605&lon=104.01&zoom=16")
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(asked()) == 1
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    popup = open_popup(page.locator(f"{OVERLAY_PATHS}[fill='#2e7d32']"))
    popup.get_by_text("李网格长").wait_for()
    page.evaluate(f"delete {DRAWN}.drawnGrids")
    page.evaluate(f"{map_name}.panBy([0, 120], {{animate: false}})")  # a fifth is 200 px
    assert wait_drawn(page, "Grids", 2) == 2
    page.wait_for_timeout(300)  # a request would have gone by now (60 ms after the move)
    assert len(asked()) == 1
    assert popup.is_visible() and city["grid1"].name in popup.inner_text()
    page.evaluate(f"delete {DRAWN}.drawnGrids")
    page.evaluate(f"{map_name}.panBy([0, 600], {{animate: false}})")
    assert wait_drawn(page, "Grids") >= 0
    assert len(asked()) == 2
    assert_clean(page)


def early_facts(page) -> dict:
    """The facts of the page's early request (maps.remote.EARLY_SCRIPT)."""
    (facts,) = re.findall(r"\}\)\((\{.*?\})\);\n</script>", page.content())
    return json.loads(facts)


EARLY_PAGES = ["/maps/coverage/", "/maps/coverage/?lat=30.605&lon=104.01&zoom=15"]


def early_loads(page, asked: list[str], url: str) -> tuple[list[str], list[str]]:
    """The paths of the grid requests in `asked`, and how the page loaded `url` (the
    initiator of each of its resource timing entries: "link" for a preload)."""
    paths = [urlsplit(a)._replace(scheme="", netloc="").geturl() for a in asked]
    initiators = page.evaluate(
        "u => performance.getEntriesByType('resource')"
        ".filter(e => e.name.endsWith(u)).map(e => e.initiatorType)",
        url,
    )
    return paths, initiators


@pytest.mark.parametrize("url", EARLY_PAGES)
def test_the_early_request_is_the_heads_preload(page_for, city, url):
    """In a window that gives the content column its full width, the early request is the
    one the head preloads: asked for once, as the head is read, and drawn from."""
    page = page_for(city["admin"], viewport={"width": 1280, "height": 800})
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    page.goto(url)
    assert wait_drawn(page, "Grids", 2) == 2
    wide = early_facts(page)["wide"]["url"]
    assert early_loads(page, asked, wide) == ([wide], ["link"])
    assert page.evaluate(f"{DRAWN}.earlyGrids") == wide
    assert_clean(page)


@pytest.mark.parametrize("url", EARLY_PAGES)
def test_a_narrower_window_asks_for_what_the_server_computes_for_its_width(page_for, city, url):
    """Too narrow for the preload, the page computes its early request in the browser: the
    same request maps.remote.early_request computes for that width (so the two agree on
    the preload's), and draws its answer."""
    page = page_for(city["admin"], viewport={"width": 1000, "height": 800})
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    page.goto(url)
    assert wait_drawn(page, "Grids", 2) == 2
    facts = early_facts(page)
    width = page.evaluate("window.innerWidth") - facts["column"]["gutter"]
    expected = early_request(facts, width)["url"]
    assert early_loads(page, asked, expected) == ([expected], ["xmlhttprequest"])
    assert page.evaluate(f"{DRAWN}.earlyGrids") == expected
    assert_clean(page)


def test_a_wrong_guess_of_the_first_zoom_costs_one_request_more(page_for, city):
    """A window that says it is 150 px wide: the early request is for a zoom in another
    detail band than the map opens at, so the layer asks again for its box. (The window is
    too narrow for the head's preload, which is for the content column's full width.)"""
    page = page_for(city["admin"], viewport={"width": 1000, "height": 800})
    page.add_init_script("Object.defineProperty(window, 'innerWidth', {get: () => 150});")
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    page.goto("/maps/coverage/")
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(asked) == 2
    assert "bbox=" not in asked[0] and "bbox=" in asked[1]
    assert page.evaluate(f"{DRAWN}.earlyGrids") is None
    assert_clean(page)


def test_a_shared_view_asks_for_its_box_before_leaflet_and_draws_that(page_for, city):
    """Opened at a centre and zoom (a shared address), the page asks at the top of its head
    for the box layers.js would ask for, draws that answer without asking again, and keeps
    it for moves within the box."""
    page = page_for(city["admin"])
    asked = layer_requests(page, "/maps/layers/units.geojson?kind=grid")
    page.goto("/maps/coverage/?lat=30.605&lon=104.01&zoom=15")
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(asked) == 1 and asked[0].endswith("&zoom=15")
    assert asked[0].endswith(page.evaluate(f"{DRAWN}.earlyGrids"))
    map_name = page.evaluate("document.querySelector('.folium-map').id")
    asked_box = [float(v) for v in parse_qs(urlsplit(asked[0]).query)["bbox"][0].split(",")]
    leaflet_box = page.evaluate(f"{map_name}.getBounds().pad(0.2).toBBoxString()")
    assert asked_box == pytest.approx([float(v) for v in leaflet_box.split(",")], abs=1e-4)
    assert regrid(page, f"{map_name}.panBy([100, 50], {{animate: false}})", 2) == 2
    assert len(asked) == 1
    # beyond the box it asks again, by the new box
    regrid(page, f"{map_name}.panBy([1500, 0], {{animate: false}})")
    assert len(asked) == 2 and "bbox=" in asked[1]
    assert_clean(page)


@pytest.mark.parametrize(
    ("status", "content_type", "body", "early_answer_in"),
    [
        (500, "text/plain", "", False),
        (200, "application/geo+json-seq", '\x1e{"type": "Featu', False),
        (200, "application/geo+json-seq", '\x1e{"type": "Featu', True),
    ],
)
def test_a_failed_early_request_is_asked_again(
    page_for, city, status, content_type, body, early_answer_in
):
    """A refused early request, or an answer that cannot be read (also when it is in before
    the map is built), is asked again by box."""
    page = page_for(city["admin"])
    failed = []

    def fail_once(route):
        if not failed and "bbox=" not in route.request.url:
            failed.append(route.request.url)
            route.fulfill(status=status, content_type=content_type, body=body)
        else:
            route.continue_()

    page.route("**/maps/layers/units.geojson?kind=grid*", fail_once)
    if early_answer_in:
        open_with_early_answer_in(page, "/maps/coverage/")
    else:
        page.goto("/maps/coverage/")
    assert wait_drawn(page, "Grids", 2) == 2
    assert len(failed) == 1
    # the refused answer, its body left unread
    assert_clean(
        page,
        allow=[
            r"status of 500",
            r"kind=grid&format=geojson-seq&zoom=\d+: (HTTP 500|net::ERR_ABORTED)",
        ],
    )
