"""A map page's stylesheets in one file and its scripts in another.

A map page needs up to four stylesheets (the site's, Leaflet's, the map controls', a
plugin's) and three or more scripts (Leaflet, maps/layers.js, plugins). Each file is a
request the browser starts, waits for and hands to the page in its own tasks, and the
page's first features wait for all of them (what one file each saved is measured in
docs/benchmarks.md, map run N).

`url(kind, names)` is the address of the bundle of the named static files (BUNDLED: the
vendored assets of maps.assets.LOCAL_ASSETS and the app's own), in that order, with a digest
of their content: `/maps/bundle.js?f=leaflet,weige_layers&v=3f2a…`. The address names its
files, so any server process can answer it; the digest changes with any file in it, so a
browser may keep an answer for a year (`serve`). A bundle is made once per process, when
first asked for (the 32 most recently used are kept), from the files found by
django.contrib.staticfiles (the app's static directories), with its gzip and Brotli
compressions.

Stylesheets keep their meaning in a bundle: a relative url(…) is rewritten to the file's
static address, and an @charset rule (which must come first in a file) is dropped (the
bundle is UTF-8). A stylesheet with @import, whose rules would then come in the middle of
the bundle, cannot be bundled. Scripts are joined with a semicolon between them, and none
of them may start with a "use strict" directive, which would make the scripts after it
strict too.
"""

import functools
import gzip
import hashlib
import posixpath
import re
from dataclasses import dataclass

import brotli
from django.conf import settings
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse

from maps.assets import LOCAL_ASSETS, PAGE_ASSETS

# Short names (used in the bundles' addresses) → files under static/.
BUNDLED = {**LOCAL_ASSETS, **PAGE_ASSETS}
KINDS = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)""")
CSS_CHARSET = re.compile(r"""^\s*@charset\s+["'][^"']*["']\s*;""")
CSS_IMPORT = re.compile(r"@import\b")
SOURCE_MAP = re.compile(r"^//[#@] sourceMappingURL=.*$", re.MULTILINE)
STRICT_START = re.compile(r"""^\s*(?:/\*.*?\*/\s*|//[^\n]*\n\s*)*["']use strict["']""", re.DOTALL)


class BundleError(ValueError):
    """A bundle that cannot be made; the message names the file and why."""


@dataclass(frozen=True)
class Bundle:
    kind: str  # "js" or "css"
    names: tuple[str, ...]
    body: bytes
    gzipped: bytes
    brotli: bytes
    digest: str  # of body: part of the address, and the ETag


def bundleable(kind: str, name: str) -> bool:
    return kind in KINDS and BUNDLED.get(name, "").endswith("." + kind)


def may_bundle(kind: str, names: tuple[str, ...]) -> bool:
    """Whether `names` may make a bundle: each a bundled file of this kind, none twice."""
    return (
        bool(names)
        and len(set(names)) == len(names)
        and all(bundleable(kind, name) for name in names)
    )


def get(kind: str, names: tuple[str, ...]) -> Bundle:
    """The bundle of `names`; BundleError if they may not make one. The most recently used
    bundles are kept (the pages use a handful)."""
    return _make(kind, tuple(names))


def url(kind: str, names) -> str:
    """The bundle's address (see the module docstring)."""
    bundle = get(kind, tuple(names))
    return f"{reverse('map-bundle', args=[kind])}?f={','.join(bundle.names)}&v={bundle.digest}"


@functools.lru_cache(maxsize=32)
def _make(kind: str, names: tuple[str, ...]) -> Bundle:
    if not may_bundle(kind, names):
        raise BundleError(f"{','.join(names)!r} are not .{kind} files that may be bundled")
    parts = []
    for name in names:
        path = BUNDLED[name]
        found = finders.find(path)
        if not found:
            raise BundleError(f"{path} is not among the static files")
        with open(found, encoding="utf-8") as file:
            text = file.read()
        parts.append(_css(path, text) if kind == "css" else _js(path, text))
    body = ("\n" if kind == "css" else "\n;\n").join(parts).encode()
    return Bundle(
        kind,
        names,
        body,
        gzip.compress(body, compresslevel=9, mtime=0),
        brotli.compress(body, mode=brotli.MODE_TEXT),
        hashlib.sha256(body).hexdigest()[:16],
    )


def _css(path: str, text: str) -> str:
    if CSS_IMPORT.search(text):
        raise BundleError(f"{path} has an @import rule, which a bundle cannot keep in place")
    here = posixpath.dirname(path)

    def absolute(match: re.Match) -> str:
        quote, target = match.group(1), match.group(2).strip()
        if target.startswith(("/", "#", "data:", "http:", "https:")):
            return match.group(0)
        return f"url({quote}{static(posixpath.normpath(posixpath.join(here, target)))}{quote})"

    return f"/* {path} */\n" + CSS_URL.sub(absolute, CSS_CHARSET.sub("", text, count=1))


def _js(path: str, text: str) -> str:
    if STRICT_START.match(text):
        raise BundleError(f"{path} starts with a 'use strict' directive")
    return f"/* {path} */\n" + SOURCE_MAP.sub("", text)


LOADED = re.compile(r'<(?:script src|link rel="stylesheet" href)="([^"]+)"')


def static_files(html: str) -> list[str]:
    """The static files (paths under static/) that `html` loads with <script src> and
    stylesheet <link> elements, in order, each bundle's files in its place."""
    files = []
    bundle_path = reverse("map-bundle", args=["KIND"]).removesuffix("KIND")
    static_path = "/" + settings.STATIC_URL.strip("/") + "/"
    for address in LOADED.findall(html):
        address = address.replace("&amp;", "&")
        path, _, query = address.partition("?")
        if path.startswith(bundle_path):
            names = dict(part.partition("=")[::2] for part in query.split("&"))["f"]
            files.extend(BUNDLED[name] for name in names.split(","))
        elif path.startswith(static_path):
            files.append(path.removeprefix(static_path))
    return files
