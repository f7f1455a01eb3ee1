"""Map pages and the layer endpoints they fetch (issue #4).

Pages: coverage (staffing, coverage problems, courtyards, workstations), hazards
(incidents clustered or as a heat map, open incidents per grid, the incident list's
filters), workstations (精网微格 pilots, with pilot and other streets side by side) and one
unit. Each page is a map without features; the browser fetches its layers from
/maps/layers/<name>.geojson by box and zoom (maps.layers), and the page links each layer for
download as GeoJSON (the whole layer in the user's scope, with the page's filters).
"""

import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseNotModified, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope, scope_roots
from incidents.selectors import reject_nul
from incidents.views.lists import (
    FLAG_CHOICES,
    OVERDUE_CHOICES,
    YES_NO_CHOICES,
    category_groups,
)
from incidents.workflow import State
from maps import basemaps, bundles, district_maps, layers, selectors
from maps.assets import render_fragment
from maps.district_maps import MICROGRID_MIN_ZOOM, LayerSpec

# Query parameters of the hazard map passed on to its layers (incidents.selectors filters).
HAZARD_FILTERS = (
    "major",
    "category",
    "state",
    "overdue",
    "from",
    "to",
    "police_relevant",
    "source",
    "flag",
)
GEOJSON = "application/geo+json"
GEOJSON_SEQ = "application/geo+json-seq"  # RFC 8142
# what the units layer can answer, the default (for */* or no Accept header) first
ANSWER_TYPES = (GEOJSON, "application/json", GEOJSON_SEQ)
ACCEPTS_GZIP = re.compile(r"\bgzip\b")  # as django.middleware.gzip


def layer_url(name: str, **params) -> str:
    url = reverse("map-layer", args=[name])
    query = urlencode([(k, v) for k, v in params.items() if v not in (None, "")], doseq=True)
    return f"{url}?{query}" if query else url


def unit_url_template() -> str:
    """The unit map's address with "{code}" where the unit code goes (for layers.js)."""
    return reverse("map-unit", args=["CODE"]).replace("CODE", "{code}")


def download_url(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "download=1"


@require_GET
def layer(request, name: str):
    """One layer as GeoJSON (incident_heat: heat-map cells as JSON). 403 for anonymous
    users, 404 for an unknown layer, 400 naming a wrong parameter."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": _("log in to see map layers")}, status=403)
    if name not in layers.LAYERS:
        raise Http404(name)
    params = request.GET
    user = request.user
    try:
        reject_nul(params)
        view = layers.parse_view(params, basemaps.current().crs)
        if name == "units":
            answer = layers.units_answer(
                user, params.get("kind") or "grid", view, params.get("code")
            )
            # a map asks for a text sequence (it draws the first features before it has
            # read the rest), by its Accept header or, where it cannot choose the header
            # (a preload), by format=geojson-seq; downloads and other clients get a
            # FeatureCollection
            form, content_type = "text", GEOJSON
            if (
                params.get("format") == "geojson-seq"
                or request.get_preferred_type(ANSWER_TYPES) == GEOJSON_SEQ
            ):
                form, content_type = "sequence", GEOJSON_SEQ
            if ACCEPTS_GZIP.search(request.headers.get("accept-encoding", "")):
                # compressed once for an answer kept for many requests (GZipMiddleware
                # leaves a response with a Content-Encoding alone)
                response = HttpResponse(answer.gzipped(form), content_type=content_type)
                response["Content-Encoding"] = "gzip"
                return _layer_response(response, name, params)
            return _layer_response(
                HttpResponse(getattr(answer, form), content_type=content_type), name, params
            )
        elif name == "problems":
            body = layers.problems_layer(user, view)
        elif name == "courtyards":
            body = layers.courtyards_layer(user, view)
        elif name == "workstations":
            body = layers.workstations_layer(user, view, params.get("id"))
        elif name == "workstation_units":
            body = layers.workstation_units_layer(user, view)
        elif name == "incidents":
            body = layers.incidents_layer(user, params, view)
        elif name == "incident_density":
            body = layers.incident_density_layer(user, params, view)
        else:
            response = JsonResponse(layers.incident_heat(user, params, view))
            response["Cache-Control"] = "private, no-cache"
            return response
    except ValueError as exc:  # LayerError and the incident filters' errors
        return JsonResponse({"error": str(exc)}, status=400)
    return _layer_response(HttpResponse(body, content_type=GEOJSON), name, params)


ACCEPTS_BROTLI = re.compile(r"\bbr\b")
YEAR = 365 * 24 * 3600


@require_GET
def bundle(request, kind: str):
    """A map page's stylesheets or scripts in one file (maps.bundles): ?f=name,name,… in
    order; 404 unless each is a bundled file of this kind, none twice. With ?v= the
    bundle's current digest the answer may be kept for a year, else (a page from before an
    update) it is the current bundle, checked again each time. For logged-in users, whose
    pages link them (making a bundle compresses it; the files in it are public anyway)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": _("log in to load the maps' files")}, status=403)
    names = tuple(request.GET.get("f", "").split(","))
    if not bundles.may_bundle(kind, names):
        raise Http404(request.GET.get("f", ""))
    found = bundles.get(kind, names)
    etag = f'W/"{found.digest}"'  # the same for each compression of the bundle
    if found.digest in request.headers.get("if-none-match", ""):
        response = HttpResponseNotModified()
    else:
        accepted = request.headers.get("accept-encoding", "")
        if ACCEPTS_BROTLI.search(accepted):
            response = HttpResponse(found.brotli, content_type=bundles.KINDS[kind])
            response["Content-Encoding"] = "br"
        elif ACCEPTS_GZIP.search(accepted):
            response = HttpResponse(found.gzipped, content_type=bundles.KINDS[kind])
            response["Content-Encoding"] = "gzip"
        else:
            response = HttpResponse(found.body, content_type=bundles.KINDS[kind])
    response["ETag"] = etag
    if request.GET.get("v") == found.digest:
        response["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    else:
        response["Cache-Control"] = "public, no-cache"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _layer_response(response, name: str, params):
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ("Accept", "Accept-Encoding"))
    if params.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{name}.geojson"'
    return response


def start_view(request) -> tuple[float, float, int] | None:
    """(lat, lon, zoom) from ?lat=…&lon=…&zoom=… (a shareable view), else None; values
    that are not numbers in range are ignored and the map opens on the user's units."""
    try:
        lat = float(request.GET["lat"])
        lon = float(request.GET["lon"])
        zoom = int(request.GET["zoom"])
    except (KeyError, ValueError):
        return None
    if abs(lat) <= 90 and abs(lon) <= 180 and 0 <= zoom <= 22:
        return lat, lon, zoom
    return None


def _page(request, template: str, fmap, downloads, **context):
    context.update(
        {
            "map": render_fragment(fmap),
            "downloads": [(label, download_url(url)) for label, url in downloads],
            "basemap": basemaps.current(),
        }
    )
    return render(request, template, context)


@login_required
def coverage(request):
    basemap = basemaps.current()
    specs = [
        LayerSpec(
            "grids",
            layer_url("units", kind="grid"),
            "units",
            _("grids"),
            overlay=False,
            early=True,
        ),
        LayerSpec(
            "microgrids",
            layer_url("units", kind="microgrid"),
            "units",
            _("micro-grids"),
            min_zoom=MICROGRID_MIN_ZOOM,
            overlay=False,
            show=False,
        ),
        LayerSpec(
            "problems",
            layer_url("problems"),
            "problems",
            _("coverage problems"),
            wait_for="grids",
        ),
        LayerSpec(
            "courtyards",
            layer_url("courtyards"),
            "courtyards",
            _("courtyards"),
            min_zoom=district_maps.COURTYARD_MIN_ZOOM,
            wait_for="grids",
        ),
        LayerSpec(
            "workstations",
            layer_url("workstations"),
            "workstations",
            _("workstations"),
            wait_for="grids",
        ),
    ]
    fmap = district_maps.district_map(
        selectors.scope_bounds(request.user, basemap.crs),
        specs,
        district_maps.coverage_legend(),
        basemap=basemap,
        start=start_view(request),
        unit_url=unit_url_template(),
    )
    return _page(
        request,
        "maps/coverage.html",
        fmap,
        [(s.name, s.url) for s in specs],
        title=_("Coverage map"),
    )


def _hazard_params(request) -> dict:
    params = {}
    for name in HAZARD_FILTERS:
        values = [v for v in request.GET.getlist(name) if v]
        if values:
            params[name] = values if name == "state" else values[0]
    return params


@login_required
def hazards(request):
    basemap = basemaps.current()
    params = _hazard_params(request)
    specs = [
        LayerSpec(
            "incidents",
            layer_url("incidents", **params),
            "incidents",
            _("incidents (clustered)"),
            overlay=False,
        ),
        LayerSpec(
            "heat",
            layer_url("incident_heat", **params),
            "heat",
            _("heat map"),
            overlay=False,
            show=False,
        ),
        LayerSpec(
            "density",
            layer_url("incident_density", **params),
            "density",
            _("open incidents per grid"),
            show=False,
        ),
    ]
    fmap = district_maps.district_map(
        selectors.scope_bounds(request.user, basemap.crs),
        specs,
        district_maps.hazard_legend(),
        basemap=basemap,
        start=start_view(request),
        unit_url=unit_url_template(),
    )
    values = {name: request.GET.get(name, "") for name in HAZARD_FILTERS}
    values["states"] = request.GET.getlist("state")
    downloads = [(_("incidents"), specs[0].url), (specs[2].name, specs[2].url)]
    return _page(
        request,
        "maps/hazards.html",
        fmap,
        downloads,
        title=_("Hazard map"),
        values=values,
        category_groups=category_groups(),
        states=State.choices,
        overdue_choices=OVERDUE_CHOICES,
        yes_no=YES_NO_CHOICES,
        flag_choices=FLAG_CHOICES,
    )


@login_required
def workstations(request):
    basemap = basemaps.current()
    specs = [
        LayerSpec(
            "workstation_units",
            layer_url("workstation_units"),
            "workstation_units",
            _("units served"),
            early=True,
        ),
        LayerSpec("workstations", layer_url("workstations"), "workstations", _("workstations")),
    ]
    fmap = district_maps.district_map(
        selectors.scope_bounds(request.user, basemap.crs),
        specs,
        district_maps.workstation_legend(),
        basemap=basemap,
        start=start_view(request),
        unit_url=unit_url_template(),
    )
    rows = selectors.street_comparison(request.user)
    totals = selectors.comparison_totals(rows, _("pilot streets"), _("other streets"))
    return _page(
        request,
        "maps/workstations.html",
        fmap,
        [(s.name, s.url) for s in specs],
        title=_("Workstation pilots"),
        streets=rows,
        totals=totals,
    )


@login_required
def unit(request, code: str):
    basemap = basemaps.current()
    found = get_object_or_404(in_scope(Unit.objects.all(), request.user), code=code)
    family = selectors.unit_family(found, request.user, basemap.crs)
    if family is None:
        raise Http404(code)
    specs = [
        LayerSpec("incidents", layer_url("incidents", unit=found.code), "incidents", _("incidents"))
    ]
    fmap = district_maps.unit_map(
        family.outline,
        family.children,
        family.neighbours,
        family.bounds,
        specs,
        basemap=basemap,
        unit_url=unit_url_template(),
    )
    return _page(
        request,
        "maps/unit.html",
        fmap,
        [(s.name, s.url) for s in specs],
        title=found.name,
        unit=found,
        staff=selectors.unit_staff(found),
    )


@login_required
def landing(request):
    """Someone assigned to one grid or micro-grid (a grid chief, a member, a liaison) lands
    on the map of that unit; everyone else on the coverage map, which opens on their own
    units (several grids of a chief included)."""
    roots = scope_roots(request.user)
    if len(roots) == 1 and roots[0].kind in (UnitKind.GRID, UnitKind.MICROGRID):
        return redirect("map-unit", code=roots[0].code)
    return redirect("map-coverage")
