"""Helpers for the browser tests: what a page did wrong, and what its Leaflet maps drew.

A `Recorder` is attached to every page the `page_for` fixture opens (tests/browser/conftest.py).
It collects console messages of type "error", uncaught page errors, failed requests (network
failures, and answers with an HTTP status of 400 or more) and every request to a host:port other
than the live server's (those are aborted, so a test never reaches the internet).
`assert_clean(page)` fails listing all of them.

Leaflet draws vector layers (polygons, lines, circle markers) as SVG paths in the overlay pane
and markers (default icons, DivIcons, cluster icons) as elements with the class
leaflet-marker-icon in the marker pane; maps draw asynchronously, so wait with `wait_for_count`
before counting.
"""

import os
import re
import shutil
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = "/usr/bin/chromium"
OVERLAY_PATHS = ".leaflet-overlay-pane path"
MARKERS = ".leaflet-marker-icon"
POPUP = ".leaflet-popup-content"
TOOLTIP = ".leaflet-tooltip"
WAIT_MS = 5_000


def chromium_executable() -> str:
    """$WEIGE_CHROMIUM or /usr/bin/chromium as a full path; fails naming the package."""
    wanted = os.environ.get("WEIGE_CHROMIUM") or CHROMIUM
    found = shutil.which(wanted)
    if found is None:
        pytest.fail(
            f"the browser tests need Chromium, not found at {wanted}: install Debian's "
            "`chromium` package (apt-get install chromium; `make test` does) or set "
            "WEIGE_CHROMIUM to a Chromium executable",
            pytrace=False,
        )
    return found


@dataclass
class Recorder:
    """What went wrong on one page; `netloc` is the live server's host:port."""

    netloc: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def is_foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != self.netloc

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("request", self._request)
        page.on("requestfailed", self._request_failed)
        page.on("response", self._response)
        _recorders[page] = self

    def _console(self, message) -> None:
        if message.type == "error":
            where = message.location or {}
            self.console_errors.append(
                f"{message.text} ({where.get('url', '?')}:{where.get('lineNumber', '?')})"
            )

    def _page_error(self, error) -> None:
        self.page_errors.append(error.stack or error.message)

    def _request(self, request) -> None:
        if self.is_foreign(request.url):
            self.foreign_requests.append(f"{request.method} {request.url}")

    def _request_failed(self, request) -> None:
        if not self.is_foreign(request.url):  # foreign ones are listed (and aborted) already
            self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            request = response.request
            self.failed_requests.append(
                f"{request.method} {response.url}: HTTP {response.status} {response.status_text}"
            )

    def problems(self, allow: Iterable[str] = ()) -> list[str]:
        """Every recorded problem as one line, less those matching a regex in `allow`."""
        patterns = [re.compile(pattern) for pattern in allow]
        lines = (
            [f"console error: {line}" for line in self.console_errors]
            + [f"page error: {line}" for line in self.page_errors]
            + [f"failed request: {line}" for line in self.failed_requests]
            + [f"request to another host: {line}" for line in self.foreign_requests]
        )
        return [line for line in lines if not any(p.search(line) for p in patterns)]


_recorders: weakref.WeakKeyDictionary[Page, Recorder] = weakref.WeakKeyDictionary()


def recorder_of(page: Page) -> Recorder:
    try:
        return _recorders[page]
    except KeyError:
        raise LookupError("this page was not opened by the page_for fixture") from None


def assert_clean(page: Page, allow: Iterable[str] = ()) -> None:
    """Fail listing the console errors, page errors, failed requests and requests to other
    hosts seen on `page` so far (lines matching a regex in `allow` excepted)."""
    problems = recorder_of(page).problems(allow)
    assert not problems, f"{page.url}: {len(problems)} problem(s):\n  " + "\n  ".join(problems)


def count(page: Page, selector: str) -> int:
    return page.locator(selector).count()


def count_paths(page: Page) -> int:
    """SVG paths Leaflet drew: polygons, lines and circle markers of every map on the page."""
    return count(page, OVERLAY_PATHS)


def count_markers(page: Page) -> int:
    """Marker icons, DivIcons and marker-cluster icons of every map on the page."""
    return count(page, MARKERS)


def wait_for_count(page: Page, selector: str, expected: int, timeout: float = WAIT_MS) -> None:
    """Wait until exactly `expected` elements match `selector`; fail with the last count."""
    try:
        page.wait_for_function(
            "([selector, expected]) => document.querySelectorAll(selector).length === expected",
            arg=[selector, expected],
            timeout=timeout,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(
            f"expected {expected} × {selector!r}, found {count(page, selector)} "
            f"after {timeout:.0f} ms"
        ) from None


def map_names(page: Page) -> list[str]:
    """The JavaScript names of the page's Leaflet maps (folium's map_… globals)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll(".leaflet-container"))
                     .map((div) => div.id)
                     .filter((id) => window[id] instanceof L.Map)"""
    )


def click_map_at(page: Page, lon: float, lat: float, map_name: str | None = None) -> None:
    """Click the map (the page's only one, or `map_name`) at WGS84 (lon, lat)."""
    name = map_name or _only_map(page)
    x, y = page.evaluate(
        "([name, lat, lon]) => { const p = window[name].latLngToContainerPoint([lat, lon]);"
        " return [p.x, p.y]; }",
        [name, lat, lon],
    )
    page.locator(f"#{name}").click(position={"x": x, "y": y})


def _only_map(page: Page) -> str:
    names = map_names(page)
    assert len(names) == 1, f"expected one Leaflet map on {page.url}, found {names}"
    return names[0]


def open_popup(target: Locator, timeout: float = WAIT_MS, force: bool = False) -> Locator:
    """Click `target` (a path or marker) and return the popup that opens.

    `force` clicks even when another layer lies on top (Leaflet then gets the click at the
    same point, so the topmost layer's popup opens)."""
    target.click(force=force, timeout=timeout)
    popup = target.page.locator(POPUP).last
    popup.wait_for(state="visible", timeout=timeout)
    return popup


def hover_tooltip(target: Locator, timeout: float = WAIT_MS, force: bool = False) -> Locator:
    """Move the mouse over `target` and return the tooltip that shows."""
    target.hover(force=force, timeout=timeout)
    tooltip = target.page.locator(TOOLTIP).last
    tooltip.wait_for(state="visible", timeout=timeout)
    return tooltip


def toggle_layer(page: Page, name: str, timeout: float = WAIT_MS) -> None:
    """Switch the layer `name` in the map's layer control (expanding it when collapsed):
    a checkbox for an overlay, a radio button for a base layer."""
    control = page.locator(".leaflet-control-layers")
    control.hover(timeout=timeout)
    label = control.locator("label", has_text=name)
    label.locator("input").click(timeout=timeout)
