"""A map page's stylesheets and scripts in one file each (maps.bundles, maps.views.bundle)."""

import gzip
import re

import brotli
import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from maps import bundles
from maps.bundles import BUNDLED, BundleError, static_files

COVERAGE_STYLES = [
    "weige/site.css",
    "vendor/leaflet-1.9.3/leaflet.css",
    "maps/maps.css",
    "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.css",
]
COVERAGE_SCRIPTS = [
    "vendor/leaflet-1.9.3/leaflet.js",
    "maps/layers.js",
    "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.js",
]


@pytest.fixture
def admin(client, small_territory, seeded, user_in):
    client.force_login(user_in(small_territory["district"], "district_admin", username="admin"))
    return client


def text_of(path: str) -> str:
    with open(finders.find(path), encoding="utf-8") as file:
        return file.read()


def loaded(page: str, element: str) -> list[str]:
    pattern = (
        r'<script src="([^"]+)"'
        if element == "script"
        else r'<link rel="stylesheet" href="([^"]+)"'
    )
    return [url.replace("&amp;", "&") for url in re.findall(pattern, page)]


def test_the_coverage_page_loads_one_stylesheet_and_one_script(admin):
    page = admin.get("/maps/coverage/").text
    (style,) = loaded(page, "style")
    (script,) = loaded(page, "script")
    assert style.startswith("/maps/bundle.css?f=site_css,leaflet_css,weige_maps_css,")
    assert script.startswith("/maps/bundle.js?f=leaflet,weige_layers,Control.Fullscreen.js&v=")
    assert static_files(page) == COVERAGE_STYLES + COVERAGE_SCRIPTS
    # the site's stylesheet comes with the bundle, not a second time
    assert "/static/weige/site.css" not in page


def test_a_page_without_a_map_links_the_site_stylesheet_itself(admin):
    page = admin.get("/incidents/").text
    assert loaded(page, "style") == ["/static/weige/site.css"]


def test_a_bundle_is_its_files_in_order_and_kept_a_year(admin):
    page = admin.get("/maps/coverage/").text
    (address,) = loaded(page, "script")
    assert Client().get(address).status_code == 403  # for logged-in users, whose pages use it
    client = admin
    response = client.get(address)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    body = response.content.decode()
    starts = [body.index(text_of(path).strip()[-200:]) for path in COVERAGE_SCRIPTS]
    assert starts == sorted(starts)
    for path in COVERAGE_SCRIPTS:
        assert f"/* {path} */" in body
    digest = address.rsplit("v=", 1)[1]
    assert response["ETag"] == f'W/"{digest}"'  # the same for each compression
    # compressed as the browser accepts, the same bytes once decompressed
    packed = client.get(address, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == response.content
    packed = client.get(address, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert packed["Content-Encoding"] == "br"
    assert brotli.decompress(packed.content) == response.content
    # a browser that has it is told it has not changed
    again = client.get(address, HTTP_IF_NONE_MATCH=f'W/"{digest}"')
    assert again.status_code == 304 and not again.content


def test_a_bundle_asked_with_another_digest_is_the_current_one_checked_each_time(admin):
    current = admin.get("/maps/bundle.js?f=leaflet,weige_layers&v=0000")
    assert current.status_code == 200
    assert current["Cache-Control"] == "public, no-cache"
    assert current["ETag"] == f'W/"{bundles.get("js", ("leaflet", "weige_layers")).digest}"'


@pytest.mark.parametrize(
    "address",
    [
        "/maps/bundle.js?f=leaflet,nothing",
        "/maps/bundle.js?f=leaflet,weige_layers,leaflet",  # twice
        "/maps/bundle.js?f=leaflet,leaflet_css",  # a stylesheet in a script bundle
        "/maps/bundle.css?f=leaflet",
        "/maps/bundle.js?f=",
        "/maps/bundle.js",
        "/maps/bundle.js?f=../../gis/settings.py",
        "/maps/bundle.py?f=leaflet",
    ],
)
def test_anything_but_bundled_files_of_the_kind_is_not_found(admin, address):
    assert admin.get(address).status_code == 404


def test_every_bundled_file_can_be_bundled():
    for kind in bundles.KINDS:
        names = tuple(name for name in BUNDLED if bundles.bundleable(kind, name))
        assert names
        made = bundles.get(kind, names)
        assert len(made.body) > sum(len(text_of(BUNDLED[name])) for name in names) * 0.9


def test_a_bundle_is_made_once_and_of_distinct_files():
    made = bundles.get("js", ("leaflet", "weige_layers"))
    assert bundles.get("js", ("leaflet", "weige_layers")) is made
    for names in [("leaflet", "leaflet"), (), ("leaflet_css",)]:
        with pytest.raises(BundleError, match="may be bundled"):
            bundles.get("js", names)


def test_a_stylesheet_keeps_its_images_in_a_bundle():
    body = bundles.get("css", ("leaflet_css", "Control.FullScreen.css")).body.decode()
    assert "url(/static/vendor/leaflet-1.9.3/images/layers.png)" in body
    assert "url(images/" not in body
    for target in re.findall(r"""url\(\s*["']?([^"')]+)""", body):
        if target.startswith(("data:", "#")):  # inline, or IE's behavior: url(#default#VML)
            continue
        assert target.startswith("/static/"), target
        assert finders.find(target.removeprefix("/static/")), target


def test_stylesheet_rewriting_and_what_cannot_be_bundled():
    css = bundles._css(
        "vendor/x-1/css/x.css",
        '@charset "utf-8";\n.a{background:url("../img/a.png")}'
        ".b{background:url(data:image/png;base64,AAAA)}.c{background:url(/static/c.png)}"
        ".d{background:url('#e')}",
    )
    assert "@charset" not in css
    assert 'url("/static/vendor/x-1/img/a.png")' in css
    assert "url(data:image/png;base64,AAAA)" in css
    assert "url(/static/c.png)" in css and "url('#e')" in css
    with pytest.raises(BundleError, match=r"x\.css has an @import rule"):
        bundles._css("x.css", '@import "y.css";\n.a{}')
    with pytest.raises(BundleError, match=r"x\.js starts with a 'use strict' directive"):
        bundles._js("x.js", '/* licence */\n// more\n"use strict";\nvar a = 1;')
    # a source map's address would be taken relative to the bundle's
    assert "sourceMappingURL" not in bundles._js("x.js", "var a;\n//# sourceMappingURL=x.js.map\n")
    # a strict function is fine: only a directive at the top would spread
    assert "var a" in bundles._js("x.js", '(function () { "use strict"; var a = 1; })();')
