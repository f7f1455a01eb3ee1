"""Browser tests: headless Chromium (Debian's chromium package, driven by Playwright) loads
pages from pytest-django's live server.

Fixtures:

- `chromium`: the Browser, launched once per test session from $WEIGE_CHROMIUM or
  /usr/bin/chromium (Playwright's own browser downloads are not used). A missing executable
  fails every browser test with a message naming the package to install.
- `page_for(user=None, *, locale="en-US", **context_options) -> Page`: a new page in a browser
  context of its own whose relative URLs go to the live server (`page.goto("/incidents/new")`),
  logged in as `user` (a Django session cookie; None: anonymous), with a
  helpers.Recorder attached: `helpers.assert_clean(page)` fails listing its console errors,
  page errors, failed requests and requests to other hosts (which are aborted). After the
  test, passed or failed, each page opened is saved as a full-page PNG in
  var/artifacts/screenshots/<test name>.png (-2, -3 … for further pages of the same test).

Every test in this folder gets the `browser` marker (`pytest -m "not browser"` leaves them
out). The live server needs the transactional database, which pytest-django gives every test
that uses it: data are committed, and flushed after the test (so use the `seeded` fixture for
categories and login groups).

Playwright's sync API marks its event loop as running in the calling thread between calls, and
Django then refuses ORM calls there ("You cannot call this from an async context"). The mark is
set only while a browser test runs, with DJANGO_ALLOW_ASYNC_UNSAFE for the test: the loop only
waits for the browser while test code runs, so ORM calls from the test are safe. Other tests of
the session see no running loop. (Django's connections in this thread during the test are not
those of the fixtures that ran before `chromium`; both commit at once, as the live server needs.)
"""

import asyncio
import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.browser.helpers import Recorder, chromium_executable

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
PAGE_TIMEOUT_MS = 10_000
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


def screenshot_dir() -> Path:
    directory = Path(settings.VAR_DIR) / "artifacts" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _file_name(test_name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", test_name).strip("-")


@pytest.fixture(scope="session")
def _chromium_session():
    executable = chromium_executable()
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
    except PlaywrightError as exc:
        playwright.stop()
        pytest.fail(f"Chromium ({executable}) did not start: {exc}", pytrace=False)
    loop = asyncio.get_running_loop()  # Playwright's, marked running (see the docstring)
    asyncio._set_running_loop(None)
    yield browser, loop
    asyncio._set_running_loop(loop)
    browser.close()
    playwright.stop()
    asyncio._set_running_loop(None)


@pytest.fixture
def chromium(_chromium_session, monkeypatch):
    """The session's headless Chromium (a playwright.sync_api.Browser)."""
    browser, loop = _chromium_session
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    asyncio._set_running_loop(loop)
    yield browser
    # While the loop is marked running, asgiref gives this thread a second set of database
    # connections (context-local ones): those the test opened are closed here, or they would
    # outlive the test (and keep PostgreSQL from dropping the test database).
    connections.close_all()
    asyncio._set_running_loop(None)


def session_cookie(user, url: str) -> dict:
    """A Playwright cookie logging `user` in on the server at `url`."""
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return {"name": name, "value": client.cookies[name].value, "url": url}


@pytest.fixture
def page_for(chromium, live_server, request):
    """Open pages on the live server: `page_for(user=None, *, locale="en-US", **options)`;
    `options` go to Browser.new_context (e.g. viewport={"width": 800, "height": 600})."""
    opened = []
    netloc = urlsplit(live_server.url).netloc

    def open_page(user=None, *, locale: str = "en-US", **context_options):
        context = chromium.new_context(base_url=live_server.url, locale=locale, **context_options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        recorder = Recorder(netloc)
        # Recorded by the recorder, then refused: a test never waits for the internet.
        context.route(recorder.is_foreign, lambda route: route.abort("blockedbyclient"))
        if user is not None:
            context.add_cookies([session_cookie(user, live_server.url)])
        page = context.new_page()
        recorder.attach(page)
        opened.append((context, page))
        return page

    yield open_page

    directory = screenshot_dir()
    base = _file_name(request.node.name)
    for number, (context, page) in enumerate(opened, start=1):
        path = directory / (f"{base}.png" if number == 1 else f"{base}-{number}.png")
        try:
            page.screenshot(path=path, full_page=True, timeout=PAGE_TIMEOUT_MS)
        except PlaywrightError as exc:
            warnings.warn(f"no screenshot {path.name}: {exc}", stacklevel=1)
        context.close()
