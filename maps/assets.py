"""folium maps served by the app alone, rendered as fragments of a Django page.

folium writes <script> and <link> tags for Leaflet, jQuery, Bootstrap, Leaflet.awesome-markers,
Font Awesome and the Bootstrap 3 glyphicons, all from public CDNs. `use_local_assets` points
every such reference of a map, and of the plugin elements in it, at the copies in
maps/static/vendor/ (see its README), drops the ones the maps do without, and refuses what it
has no local copy of — an unknown plugin asset, `folium.Icon` (awesome markers), a tile layer
or image on another host — with an error naming it. A page can therefore never load anything
from the internet without a test failing. The one exception is the configured tile basemap
(maps.basemaps, setting WEIGE_BASEMAP): tile layers on its hosts are accepted, by
`render_fragment` for the current basemap or by `use_local_assets(allowed_tile_hosts=…)`.

`render_fragment` renders a map for a Django template in parts: `styles` (the page's and the
map's stylesheets, for {% block styles %}, in place of the site's stylesheet alone), `head`
(the map's size and the script links, for {% block head %}), `html` (the map's <div>) and
`script` (the map's JavaScript in a <script> element, placed after the div). The scripts
load in the head: they run while the body is still unparsed, so the page is laid out once,
when the map's script builds the map, instead of once for a first paint without the map and
again for the map (which cost a map page about 20 ms before its first features). Several
stylesheets or scripts go as one file each (maps.bundles).
folium's own page-wide styles for a stand-alone map (html and body at 100 % height without
margins) are left out. `early` holds the requests a map's layers make before anything else
has loaded (maps.remote.RemoteLayer with `early_bounds` or `early_view`: a preload and the
script that asks), for the very top of the page's head, before any stylesheet (which would
hold a script back).
"""

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement
from django.templatetags.static import static
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from folium.elements import JSCSSMixin
from folium.raster_layers import ImageOverlay, TileLayer, WmsTileLayer

from maps import basemaps

# folium's asset names (folium.folium._default_js / _default_css) → files under static/.
LOCAL_ASSETS = {
    "leaflet": "vendor/leaflet-1.9.3/leaflet.js",
    "leaflet_css": "vendor/leaflet-1.9.3/leaflet.css",
    "jquery": "vendor/jquery-3.7.1/jquery.min.js",
    # folium.plugins.MarkerCluster
    "markerclusterjs": "vendor/leaflet.markercluster-1.1.0/leaflet.markercluster.js",
    "markerclustercss": "vendor/leaflet.markercluster-1.1.0/MarkerCluster.css",
    "markerclusterdefaultcss": "vendor/leaflet.markercluster-1.1.0/MarkerCluster.Default.css",
    # folium.plugins.HeatMap
    "leaflet-heat.js": "vendor/leaflet.heat-0.2.0/leaflet_heat.min.js",
    # folium.plugins.Fullscreen
    "Control.Fullscreen.js": "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.js",
    "Control.FullScreen.css": "vendor/leaflet.fullscreen-3.0.0/Control.FullScreen.css",
}
# The app's own assets that map pages load (maps.remote.RemoteLayer, templates/base.html).
PAGE_ASSETS = {
    "site_css": "weige/site.css",
    "weige_layers": "maps/layers.js",
    "weige_maps_css": "maps/maps.css",
}
# Assets folium loads by default that the maps do without (they serve folium.Icon only).
DROPPED_ASSETS = frozenset(
    {
        "bootstrap",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "awesome_rotate_css",
    }
)
USES_JQUERY = re.compile(r"\$\(|\$\.|jQuery")
URL_RE = re.compile(r"""https?://[^\s"'<>()`]+""")


class ForeignAsset(ValueError):
    """A map element that would load something from another host; the message names it."""


@dataclass(frozen=True)
class MapFragment:
    """A rendered map: `early`, `styles` and `head` for the page head, `html` and `script`
    for the body."""

    name: str  # the map's JavaScript variable (a global), e.g. "map_3f2a…"
    styles: SafeString
    head: SafeString
    html: SafeString
    script: SafeString
    early: SafeString = mark_safe("")


def _local(name: str, url: str, element) -> str:
    if name in LOCAL_ASSETS:
        return static(LOCAL_ASSETS[name])
    if not urlsplit(url).netloc:
        return url  # already served by the app
    raise ForeignAsset(
        _("%(element)s needs %(name)s from %(url)s, which has no local copy in maps/static/vendor")
        % {"element": type(element).__name__, "name": name, "url": url}
    )


def _walk(element):
    yield element
    children = list(element._children.values())
    for part in ("header", "html", "script"):
        if isinstance(getattr(element, part, None), Element):
            children.append(getattr(element, part))
    for child in children:
        yield from _walk(child)


def _is_foreign(url) -> bool:
    return isinstance(url, str) and bool(urlsplit(url).netloc)


def _foreign_tiles(element, allowed_tile_hosts: frozenset[str]) -> str | None:
    """The URL of a tile layer that reaches a host outside `allowed_tile_hosts`, else None."""
    url = getattr(element, "tiles", None) or getattr(element, "url", None)
    if not _is_foreign(url):
        return None
    subdomains = getattr(element, "options", {}).get("subdomains", "abc")
    return None if basemaps.tile_hosts(url, subdomains) <= allowed_tile_hosts else url


def use_local_assets(
    fmap: folium.Map, allowed_tile_hosts: Collection[str] = frozenset()
) -> folium.Map:
    """Make `fmap` and every element in it load their assets from this app (see above).

    Tile layers may load tiles from `allowed_tile_hosts` (host names, each {s} subdomain
    counted; e.g. `basemaps.current().hosts`), and from nowhere else. Idempotent; returns the
    map. Raises ForeignAsset for anything without a local copy.
    """
    allowed_tile_hosts = frozenset(allowed_tile_hosts)
    for element in _walk(fmap.get_root()):
        if type(element) is folium.Icon:
            raise ForeignAsset(
                _(
                    "folium.Icon needs Leaflet.awesome-markers, which is not shipped; use "
                    "CircleMarker, Marker with the default icon or DivIcon"
                )
            )
        if isinstance(element, TileLayer | WmsTileLayer) and (
            url := _foreign_tiles(element, allowed_tile_hosts)
        ):
            raise ForeignAsset(_("the tile layer %(url)s is on another host") % {"url": url})
        if isinstance(element, ImageOverlay) and _is_foreign(getattr(element, "url", None)):
            raise ForeignAsset(_("the image %(url)s is on another host") % {"url": element.url})
        if isinstance(element, JSCSSMixin):
            # Instance attributes: folium's lists are shared class attributes.
            element.default_js = [
                (name, _local(name, url, element))
                for name, url in element.default_js
                if name not in DROPPED_ASSETS
            ]
            element.default_css = [
                (name, _local(name, url, element))
                for name, url in element.default_css
                if name not in DROPPED_ASSETS
            ]
    return fmap


class _Rendered(Element):
    """Text that a folium element's macro has already rendered, kept as it is."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text

    def render(self, **kwargs) -> str:
        return self._text


def _render_macros(self, **kwargs):
    """branca's MacroElement.render, except that what the element's header, html and script
    macros render goes into the page as it is. branca wraps each in an Element, which
    compiles the text as a Jinja template and renders it again: data in a map (a unit's
    name, an incident's text in a popup) holding "{{ … }}" or "{% … %}" would be evaluated
    on the server, and compiling every element's script anew took most of a map page's
    rendering time."""
    figure = self.get_root()
    if not isinstance(figure, Figure):
        raise TypeError(f"{type(self).__name__} cannot be rendered outside a Figure")
    macros = self._template.module.__dict__
    for part in ("header", "html", "script"):
        macro = macros.get(part)
        if macro is not None:
            getattr(figure, part).add_child(_Rendered(macro(self, kwargs)), name=self.get_name())
    for element in self._children.values():
        element.render(**kwargs)


def _render_popup(self, **kwargs):
    """folium.Popup.render (which renders its template itself), its output kept as it is."""
    for element in self._children.values():
        element.render(**kwargs)
    figure = self.get_root()
    if not isinstance(figure, Figure):
        raise TypeError("a Popup cannot be rendered outside a Figure")
    text = self._template.render(this=self, kwargs=kwargs)
    figure.script.add_child(_Rendered(text), name=self.get_name())


# Every folium element (Map, GeoJson, Tooltip, markers, plugins, the app's own) renders
# through MacroElement.render, except Popup.
MacroElement.render = _render_macros
folium.Popup.render = _render_popup


def _size(value) -> str:
    number, unit = value
    return f"{number}{unit}"


def _embedded_header(fmap: folium.Map) -> str:
    """The map's size and folium's two Leaflet switches, without page-wide styles."""
    name = fmap.get_name()
    switches = fmap.global_switches
    return (
        f"<style>#{name} {{position: {fmap.position}; width: {_size(fmap.width)}; "
        f"height: {_size(fmap.height)}; left: {_size(fmap.left)}; top: {_size(fmap.top)};}}"
        "</style>\n"
        f"<script>L_NO_TOUCH = {'true' if switches.no_touch else 'false'}; "
        f"L_DISABLE_3D = {'true' if switches.disable_3d else 'false'};</script>"
    )


def _check_links(header: Element) -> None:
    """Last line of defence: links added while rendering (some elements do) must be local."""
    for name, child in list(header._children.items()):
        if isinstance(child, JavascriptLink | CssLink):
            if name in DROPPED_ASSETS:
                del header._children[name]
            elif _is_foreign(child.url):
                child.url = _local(name, child.url, child)


def _links(kind: str, assets: list[tuple[str, str]]) -> list[str]:
    """<script> or stylesheet <link> elements for (name, url) assets, in order: one for
    their bundle (maps.bundles) when there are several and every one of them is a bundled
    file, else one each."""
    from maps import bundles  # which imports LOCAL_ASSETS from here

    if len(assets) > 1 and all(
        bundles.bundleable(kind, name) and url == static(bundles.BUNDLED[name])
        for name, url in assets
    ):
        assets = [("", bundles.url(kind, [name for name, _url in assets]))]
    if kind == "js":
        return [f'<script src="{escape(url)}"></script>' for _name, url in assets]
    return [f'<link rel="stylesheet" href="{escape(url)}">' for _name, url in assets]


def render_fragment(
    fmap: folium.Map,
    allowed_tile_hosts: Collection[str] | None = None,
    page_styles: Collection[str] = ("site_css",),
) -> MapFragment:
    """Render `fmap` with local assets as a MapFragment (see the module docstring).

    Tile layers may use the hosts of the configured basemap (`basemaps.current()`), or of
    `allowed_tile_hosts` if given. `page_styles` (names in PAGE_ASSETS) are the page's own
    stylesheets, which go first in `styles`.
    """
    if allowed_tile_hosts is None:
        allowed_tile_hosts = basemaps.current().hosts
    use_local_assets(fmap, allowed_tile_hosts)
    figure = fmap.get_root()
    for child in figure._children.values():
        child.render()
    header = figure.header
    _check_links(header)
    parts = []
    styles = [(name, static(PAGE_ASSETS[name])) for name in page_styles]
    scripts = []
    for name, child in header._children.items():
        if name == "meta_http":
            continue  # the page has its own charset
        if isinstance(child, JavascriptLink):
            scripts.append((name, child.url))
        elif isinstance(child, CssLink):
            styles.append((name, child.url))
        else:
            parts.append(_embedded_header(fmap) if name == fmap.get_name() else child.render())
    html = figure.html.render()
    script = f"<script>\n{figure.script.render()}\n</script>"
    if not USES_JQUERY.search(script):
        # folium loads jQuery for a few of its elements (Popup, GeoJson with embed links);
        # a page whose map script does not use it is spared ~90 kB of script to run
        scripts = [(name, url) for name, url in scripts if name != "jquery"]
    parts.extend(_links("js", scripts))
    early = "".join(
        child.early_script(fmap.get_name())
        for child in fmap._children.values()
        if getattr(child, "early_bounds", None) or getattr(child, "early_view", None)
    )
    return MapFragment(
        fmap.get_name(),
        styles=mark_safe("\n".join(_links("css", styles))),
        head=mark_safe("\n".join(parts)),
        html=mark_safe(html),
        script=mark_safe(script),
        early=mark_safe(early),
    )


def foreign_urls(html: str, host: str = "testserver") -> list[str]:
    """The http(s) URLs in `html` whose host is not `host` (what tests assert is empty)."""
    return [url for url in URL_RE.findall(html) if urlsplit(url).hostname != host]
