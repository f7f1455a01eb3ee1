"""Map layers as GeoJSON: what the map pages draw, by box and zoom, within the user's scope.

Every layer starts from grids.scoping.in_scope (units, workstations) or
incidents.selectors.incidents_for (incidents) — the same functions as the lists — so a map
never shows more than the user's lists. Outlines come from maps.geometry_cache (simplified
per zoom band, cached per boundary state); everything else (staff, incidents, problems) is
read per request — except a page's first answer of the units layer (every unit in scope),
which is kept while the outlines, the scope, the units and their staff stay as they were
(units_answer).

Layers (LAYERS names them for the endpoint):
- ``units``: grids or micro-grids (``kind``) with their staffing coverage — grid chief,
  grid members per 100 households, micro-grid liaison, building heads — households,
  population, a coverage band (STAFFING_BANDS) and the coverage problems naming them;
- ``problems``: gaps, overlaps, slivers and parts outside the parent from the coverage check
  of grids and micro-grids, as points;
- ``courtyards``: current courtyards, a merged one as one outline with its former
  compounds as separate features (``former``: true);
- ``workstations``: grid workstations with their served units, staff, open and overdue
  incidents and the on-time closure rate of the last 30 days; ``workstation_units``: the
  outlines of the units they serve;
- ``incidents``: incident points clustered on the server per screen cell at the requested
  zoom, the incident list's filters applied; ``incident_heat``: the same points as heat-map
  cells; ``incident_density``: grids with their number of open incidents.

On a map view (the request has a zoom) a unit carries only UNIT_SUMMARY and a workstation
only WORKSTATION_SUMMARY: what the map draws; the rest comes for one unit (``code``) or
station (``id``) when its popup opens, and in the download (no zoom). The units layer
answers a GeoJSON text sequence (RFC 8142) to a map that asks for one (maps.views.layer),
so the browser draws the first units before it has parsed the rest.

Coordinates are WGS84 unless the basemap is GCJ-02 (maps.basemaps): then every coordinate
of every layer, and the requested box, are GCJ-02.
"""

import codecs
import datetime
import gzip
import hashlib
import json
import math
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from django.conf import settings
from django.contrib.gis.db.models.functions import GeoFunc
from django.contrib.gis.geos import Polygon
from django.core.cache import caches
from django.db import connections
from django.db.models import Case, Count, FloatField, Prefetch, Q, When, prefetch_related_objects
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from gis.crs import gcj02_to_wgs84, transform_geometry, wgs84_to_gcj02
from grids.coverage_check import check_unit_coverage
from grids.geometry import to_shapely
from grids.kinds import UnitKind
from grids.models import (
    BoundaryVersion,
    ChangeKind,
    Lineage,
    Role,
    StaffAssignment,
    Unit,
    Workstation,
    revision,
)
from grids.scoping import in_scope, scope_key
from incidents.kpis import indicators_of_units
from incidents.models import Incident
from incidents.selectors import filter_incidents, incidents_for
from incidents.workflow import FINAL_STATES
from maps import geometry_cache
from maps.geometry_cache import (
    CACHE_ALIAS,
    CACHE_SECONDS,
    band_for,
    boundary_states,
    outlines,
)

MEMBER_ROLES = (Role.FULLTIME_MEMBER, Role.PARTTIME_MEMBER)
# Coverage bands of the "units" layer (colours in maps.styles):
#   grid:       missing = no grid chief; thin = fewer members per 100 households than
#               settings.WEIGE_MEMBERS_PER_100_HOUSEHOLDS; ok otherwise.
#   micro-grid: missing = no micro-grid liaison; thin = no building head; ok otherwise.
STAFFING_BANDS = ("ok", "thin", "missing")
COVERAGE_KINDS = (UnitKind.GRID, UnitKind.MICROGRID)
CLUSTER_CELL_PX = 60
HEAT_CELL_PX = 12
# At this zoom and beyond every incident is its own marker.
SINGLE_MARKERS_ZOOM = 18


class LayerError(ValueError):
    """A wrong layer parameter; the message names it."""


@dataclass(frozen=True)
class View:
    """What the browser shows: a box (x0, y0, x1, y1 in the display CRS, or None for the
    whole layer), the zoom (None: full detail) and the display CRS."""

    box: tuple[float, float, float, float] | None = None
    zoom: int | None = None
    crs: str = "wgs84"

    @property
    def band(self) -> int:
        return geometry_cache.FULL_DETAIL if self.zoom is None else band_for(self.zoom)


def parse_view(params, crs: str) -> View:
    """The View from ``bbox=x0,y0,x1,y1`` and ``zoom=z`` (both optional)."""
    box = None
    raw = params.get("bbox")
    if raw:
        try:
            box = tuple(float(v) for v in raw.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise LayerError(_("bbox=%(raw)r must be four numbers x0,y0,x1,y1") % {"raw": raw})
        if box[0] > box[2] or box[1] > box[3]:
            raise LayerError(_("bbox=%(raw)r: x0 > x1 or y0 > y1") % {"raw": raw})
        # a zoomed-out browser asks for more than the globe: keep to it (GEOS cannot take
        # coordinates of any size)
        x0, y0, x1, y1 = box
        box = (
            min(max(x0, -180.0), 180.0),
            min(max(y0, -90.0), 90.0),
            min(max(x1, -180.0), 180.0),
            min(max(y1, -90.0), 90.0),
        )
    zoom = None
    raw = params.get("zoom")
    if raw:
        try:
            zoom = int(raw)
        except ValueError:
            zoom = -1
        if not 0 <= zoom <= 24:
            raise LayerError(_("zoom=%(raw)r must be a whole number 0–24") % {"raw": raw})
    return View(box, zoom, crs)


# --------------------------------------------------------------------------------------------
# GeoJSON output


def feature_collection(features: Iterable[str], **members) -> str:
    """A FeatureCollection text from feature texts (plus top-level members, e.g. counts)."""
    head = "".join(
        f"{json.dumps(k)}:{json.dumps(v, ensure_ascii=False)}," for k, v in members.items()
    )
    return '{"type":"FeatureCollection",' + head + '"features":[' + ",".join(features) + "]}"


# one encoder for every feature: json.dumps builds a new one per call when given options
_properties_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def feature(geometry: str, properties: dict, fid=None) -> str:
    ident = f'"id":{json.dumps(fid)},' if fid is not None else ""
    props = _properties_json(properties)
    return f'{{"type":"Feature",{ident}"geometry":{geometry},"properties":{props}}}'


def point(lon: float, lat: float, decimals: int = 6) -> str:
    return f'{{"type":"Point","coordinates":[{round(lon, decimals)},{round(lat, decimals)}]}}'


def to_display(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if crs == "gcj02" and len(lon):
        return wgs84_to_gcj02(lon, lat)
    return lon, lat


def box_in_wgs84(view: View) -> tuple[float, float, float, float] | None:
    if view.box is None:
        return None
    x0, y0, x1, y1 = view.box
    if view.crs == "gcj02":
        xs, ys = gcj02_to_wgs84(np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
        margin = 0.001  # the shift varies by a few metres across a box: keep the edges
        return (xs.min() - margin, ys.min() - margin, xs.max() + margin, ys.max() + margin)
    return view.box


def unit_url(code: str) -> str:
    return reverse("map-unit", args=[code])


# --------------------------------------------------------------------------------------------
# Units and staffing coverage


def _selected(kind: str, user, view: View, extra: Q | None = None):
    """(outlines, indexes of the outlines in the box and scope, the units to read rows and
    staff through) of the current `kind` units. The last is the scoped queryset when the
    box holds most of the scope and more than MANY_UNITS units (a district view), else None
    (read by id)."""
    prepared = outlines(kind, view.crs)
    units = in_scope(Unit.objects.filter(kind=kind, retired_on__isnull=True), user)
    if extra is not None:
        units = units.filter(extra)
    allowed = set(units.values_list("id", flat=True))
    picked = [i for i in prepared.in_box(view.box) if int(prepared.unit_ids[i]) in allowed]
    many = len(picked) > MANY_UNITS and 2 * len(picked) > len(allowed)
    return prepared, picked, units if many else None


# Above this many units, most of the scope, their rows and staff are read through the
# scoped queryset (a join on the scope's conditions) rather than a list of ids, which costs
# the database about twice as much to parse and look up; the rows outside the box are
# ignored. A unit changed between the two reads (retired, moved out of the scope) has no row
# and is left out of the answer.
MANY_UNITS = 1000


def _by_units(queryset, field: str, ids: list[int], units):
    if units is not None:
        return queryset.filter(**{f"{field}__in": units})
    return queryset.filter(**{f"{field}__in": ids})


def _unit_rows(ids: list[int], units=None) -> dict[int, dict]:
    rows = _by_units(Unit.objects.all(), "pk", ids, units).values(
        "id", "code", "name", "kind", "households", "population", "parent__name"
    )
    return {r["id"]: r for r in rows}


def _staff(ids: list[int], day: datetime.date, units=None) -> dict[int, list[tuple[str, str]]]:
    """(role, name) of the staff assigned on `day` to each unit."""
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = (
        _by_units(StaffAssignment.objects.active_on(day), "unit", ids, units)
        .order_by("unit_id", "role", "member__name")
        .values_list("unit_id", "role", "member__name")
    )
    for unit_id, role, name in rows:
        found[unit_id].append((role, name))
    return found


def staffing(
    kind: str, households: int, staff: list[tuple[str, str]], members_per_100: float | None = None
) -> dict:
    """The staffing facts and coverage band of one grid or micro-grid (STAFFING_BANDS).
    `members_per_100` is settings.WEIGE_MEMBERS_PER_100_HOUSEHOLDS unless given (a layer
    of thousands of units reads the setting once)."""
    if members_per_100 is None:
        members_per_100 = settings.WEIGE_MEMBERS_PER_100_HOUSEHOLDS
    chiefs, liaisons, members, heads = [], [], 0, 0
    for role, name in staff:  # plain strings from the database, compared as such
        if role == _CHIEF:
            chiefs.append(name)
        elif role == _LIAISON:
            liaisons.append(name)
        elif role == _BUILDING_HEAD:
            heads += 1
        elif role in _MEMBERS:
            members += 1
    facts = {
        "chief": "、".join(chiefs),
        "members": members,
        "members_per_100_households": round(members * 100 / households, 2) if households else None,
        "liaison": "、".join(liaisons),
        "building_heads": heads,
    }
    if kind == UnitKind.GRID:
        if not chiefs:
            band = "missing"
        elif households and members * 100 / households < members_per_100:
            band = "thin"
        else:
            band = "ok"
    elif not liaisons:
        band = "missing"
    elif not heads:
        band = "thin"
    else:
        band = "ok"
    facts["band"] = band
    return facts


_CHIEF = Role.GRID_CHIEF.value
_LIAISON = Role.MICROGRID_LIAISON.value
_BUILDING_HEAD = Role.BUILDING_HEAD.value
_MEMBERS = tuple(role.value for role in MEMBER_ROLES)


# What a unit carries on a map view (styling, tooltip, the popup's first line); the rest
# of its facts (households, population, staff: most of the answer's size at district zoom)
# come with ?code=… when its popup opens, or in the download.
UNIT_SUMMARY = ("code", "name", "band", "problems")


def units_layer(user, kind: str, view: View, code: str | None = None) -> str:
    """The current `kind` units in the user's scope and the view's box with their staffing
    facts: on a map view (a zoom given) the UNIT_SUMMARY of each, without a zoom (the
    download) or for one unit (`code`) all of them."""
    return units_answer(user, kind, view, code).text


class Answer:
    """A layer's features, written as one GeoJSON FeatureCollection (`text`) or as a GeoJSON
    text sequence (`sequence`, RFC 8142: the collection without its features, then each
    feature, every text after an RS character and before a line feed), which a browser can
    start drawing before it has parsed the whole answer. Each form and its gzip compression
    are made once, when first asked for (an answer kept for many requests is written and
    compressed once).

    The sequence, which only maps ask for, is written in ASCII, other characters as JSON
    \\u escapes (json_ascii): a browser keeps a text that is all ASCII at one byte per
    character, but one with a single Chinese name in it at two, which slows decoding,
    splitting and parsing the answer before the first features are drawn (docs/benchmarks.md,
    map run N). Compressed, the escapes cost a few hundred bytes of a 66 kB district answer.
    The FeatureCollection (downloads, other clients) stays UTF-8, readable as it is."""

    def __init__(self, features: list[str], **members):
        self.features = features
        self.members = members
        self._made: dict[tuple[str, bool], str | bytes] = {}

    @property
    def text(self) -> str:
        return self._form("text", False)

    @property
    def sequence(self) -> str:
        return self._form("sequence", False)

    def gzipped(self, form: str = "text") -> bytes:
        return self._form(form, True)

    def _form(self, form: str, packed: bool):
        found = self._made.get((form, packed))
        if found is None:
            if packed:
                found = gzip.compress(self._form(form, False).encode(), compresslevel=6, mtime=0)
            elif form == "text":
                found = feature_collection(self.features, **self.members)
            else:
                head = feature_collection([], **self.members)
                found = json_ascii(f"{RS}{head}\n" + "".join(f"{RS}{f}\n" for f in self.features))
            self._made[(form, packed)] = found
        return found


RS = "\x1e"  # the record separator that starts each text of a GeoJSON text sequence


def _json_escapes(error: UnicodeEncodeError) -> tuple[str, int]:
    """Codec error handler: the characters ASCII cannot encode as JSON \\uXXXX escapes
    (UTF-16 surrogate pairs beyond the Basic Multilingual Plane)."""
    escaped = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


codecs.register_error("weige-json-escapes", _json_escapes)


def json_ascii(text: str) -> str:
    """JSON text (or texts) with every character beyond ASCII written as a \\u escape: the
    same values, since outside strings JSON is ASCII and inside them an escape stands for its
    character."""
    return text.encode("ascii", "weige-json-escapes").decode("ascii")


def units_answer(user, kind: str, view: View, code: str | None = None) -> Answer:
    """units_layer as an Answer: a page's first request (every unit in scope, summaries)
    is kept per scope (_summary_key) and answered again as long as nothing it shows has
    changed."""
    if kind not in COVERAGE_KINDS:
        raise LayerError(
            _("kind=%(raw)r is not one of %(known)s")
            % {"raw": kind, "known": ", ".join(COVERAGE_KINDS)}
        )
    extra = None
    if code is not None:
        if not re.fullmatch(r"[0-9A-Za-z]{1,32}", code):
            raise LayerError(_("code=%(raw)r is not a unit code") % {"raw": code})
        extra = Q(code=code)
        view = View(None, view.zoom, view.crs)
    summary = view.zoom is not None and code is None
    problems = problem_codes(kind)
    per_100 = settings.WEIGE_MEMBERS_PER_100_HOUSEHOLDS
    day = timezone.localdate()
    key = None
    if summary and view.box is None:  # a page's first answer: everything in scope
        state = outlines(kind, view.crs).state
        key = _summary_key(kind, view, state, scope_key(user), problems, per_100, day)
        found = _summaries.get(key)
        if found is not None:
            return found
    prepared, picked, units = _selected(kind, user, view, extra)
    ids = [int(prepared.unit_ids[i]) for i in picked]
    if key is not None and prepared.state != state:  # the outlines changed meanwhile
        key = None
    rows = _unit_rows(ids, units)
    staff = _staff(ids, day, units)
    texts = prepared.geojson[view.band]
    features = []
    for i, unit_id in zip(picked, ids, strict=True):
        row = rows.get(unit_id)
        if row is None:  # retired or out of scope since the scope was read (MANY_UNITS)
            continue
        # The unit's page is /maps/units/<code>/ (layers.js builds the link), its kind is
        # the collection's.
        properties = {
            "code": row["code"],
            "name": row["name"],
            "households": row["households"],
            "population": row["population"],
            **staffing(kind, row["households"], staff.get(unit_id, ()), per_100),
            "problems": problems.get(row["code"], 0),
        }
        if summary:  # no feature id either: the code is in the properties
            features.append(feature(texts[i], {key: properties[key] for key in UNIT_SUMMARY}))
        else:
            features.append(feature(texts[i], properties, row["code"]))
    answer = Answer(features, kind=kind)
    if key is not None:
        _summaries.put(key, answer, sum(map(len, features)))
    return answer


def _summary_key(kind, view: View, state: str, scope: tuple, problems, per_100, day) -> tuple:
    """What a summary of every unit in scope depends on: the outlines (the boundary state),
    the user's scope (grids.scoping.scope_key: the units it starts from), the units below
    them, their rows and staff (grids.models.revision: replaced by the database on every
    write to units and staff assignments, so the units in a scope are the same as long as
    it is), the staff's day, the coverage problems and the staffing setting. Found without
    reading the scope's units: a district's 2,501 grids took most of a kept answer's time."""
    return (
        kind,
        view.crs,
        view.band,
        state,
        scope,
        revision("staffing"),
        day,
        tuple(sorted(problems.items())),
        per_100,
    )


class _Recent:
    """The most recently used answers of this process by key, within a total weight (the
    least recently used dropped first)."""

    def __init__(self, budget: int):
        self.budget = budget
        self._items: dict = {}  # key -> (value, weight), least recently used first
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            found = self._items.pop(key, None)
            if found is None:
                return None
            self._items[key] = found  # now the most recent
            return found[0]

    def put(self, key, value, weight: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            if weight > self.budget:
                return
            self._items[key] = (value, weight)
            self._weight += weight
            while self._weight > self.budget:
                _value, dropped = self._items.pop(next(iter(self._items)))
                self._weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0


# A page's first answer of the units layer (every grid or micro-grid in the user's scope,
# summaries only), per scope: a district's 2,500 grids take ~40 ms to read and write, the
# kept answer ~6 ms of checking that nothing changed. Keys in _summary_key; weighed by the
# characters of their features (a district's grids ~0.75 M at zoom 12; an answer keeps its
# features, its text forms and their compressions, about three times that in memory).
SUMMARIES_BUDGET = 16_000_000
_summaries = _Recent(SUMMARIES_BUDGET)


def forget() -> None:
    """Drop the answers kept in this process (and the outlines: geometry_cache.forget)."""
    _summaries.clear()
    geometry_cache.forget()


# --------------------------------------------------------------------------------------------
# Coverage problems


def coverage_problems(kind: str) -> list[dict]:
    """The coverage check of the current `kind` units (all of them), cached per boundary
    state of the kind and of its parents."""
    parent_kinds = {UnitKind.GRID: (UnitKind.COMMUNITY, UnitKind.VILLAGE)}.get(
        kind, (UnitKind.GRID,)
    )
    state = "|".join(boundary_states((kind, *parent_kinds)).values())
    key = f"problems:{kind}:{state}"
    found = caches[CACHE_ALIAS].get(key)
    if found is None:
        report = check_unit_coverage(kind)
        found = [p.to_dict() for p in report.problems]
        caches[CACHE_ALIAS].set(key, found, CACHE_SECONDS)
    return found


def problem_codes(kind: str) -> dict[str, int]:
    counts: Counter = Counter()
    for problem in coverage_problems(kind):
        counts.update(problem["codes"])
    return dict(counts)


def problems_layer(user, view: View) -> str:
    visible = set(
        in_scope(
            Unit.objects.filter(kind__in=COVERAGE_KINDS, retired_on__isnull=True), user
        ).values_list("code", flat=True)
    )
    found = []
    for kind in COVERAGE_KINDS:
        for problem in coverage_problems(kind):
            if problem["location"] and visible.intersection(problem["codes"]):
                found.append((kind, problem))
    if not found:
        return feature_collection([])
    lon = np.array([p["location"][0] for _k, p in found])
    lat = np.array([p["location"][1] for _k, p in found])
    lon, lat = to_display(lon, lat, view.crs)
    features = []
    for (kind, problem), x, y in zip(found, lon, lat, strict=True):
        if view.box and not (view.box[0] <= x <= view.box[2] and view.box[1] <= y <= view.box[3]):
            continue
        properties = {
            "kind": kind,
            "type": problem["type"],
            "severity": problem["severity"],
            # the check's message names every unit involved: only for those who see them all
            "message": problem["message"]
            if visible.issuperset(problem["codes"])
            else _("also involves units outside your scope"),
            "codes": [c for c in problem["codes"] if c in visible],
            "area_m2": round(problem["area_m2"], 1) if problem.get("area_m2") else None,
        }
        features.append(feature(point(float(x), float(y)), properties))
    return feature_collection(features)


# --------------------------------------------------------------------------------------------
# Courtyards


def courtyards_layer(user, view: View) -> str:
    prepared, picked, units = _selected(UnitKind.COURTYARD, user, view)
    ids = [int(prepared.unit_ids[i]) for i in picked]
    rows = _unit_rows(ids, units)
    staff = _staff(ids, timezone.localdate(), units)
    version_ids = [int(prepared.version_ids[i]) for i in picked]
    merged = dict(
        BoundaryVersion.objects.filter(pk__in=version_ids, change=ChangeKind.MERGED).values_list(
            "id", "unit_id"
        )
    )
    texts = prepared.geojson[view.band]
    features = []
    for i, unit_id in zip(picked, ids, strict=True):
        row = rows.get(unit_id)
        if row is None:  # retired or out of scope since the scope was read (MANY_UNITS)
            continue
        roles = Counter(role for role, _name in staff.get(unit_id, []))
        properties = {
            "code": row["code"],
            "name": row["name"],
            "kind": UnitKind.COURTYARD,
            "households": row["households"],
            "population": row["population"],
            "building_heads": roles[Role.BUILDING_HEAD],
            "volunteers": roles[Role.PARTY_VOLUNTEER],
            "merged": int(prepared.version_ids[i]) in merged,
            "former": False,
            "url": unit_url(row["code"]),
        }
        features.append(feature(texts[i], properties, row["code"]))
    if merged:
        features += _former_compounds(list(merged), rows, merged, view)
    return feature_collection(features)


def _former_compounds(version_ids, rows, merged, view: View) -> list[str]:
    """The compounds a merged courtyard came from, as dashed outlines."""
    lineage = Lineage.objects.filter(to_version_id__in=version_ids).select_related(
        "from_version", "from_version__unit"
    )
    features = []
    for link in lineage:
        old = link.from_version
        if view.crs == "gcj02":
            text = shapely.to_geojson(transform_geometry(to_shapely(old.geom), "wgs84", "gcj02"))
        else:
            text = old.geom.json
        into = rows.get(merged[link.to_version_id])
        if into is None:  # the merged courtyard left the scope meanwhile
            continue
        properties = {
            "code": old.unit.code,
            "name": old.name,
            "kind": UnitKind.COURTYARD,
            "households": old.households,
            "population": old.population,
            "merged": False,
            "former": True,
            "merged_into": into["name"],
            "merged_on": old.valid_to.isoformat() if old.valid_to else None,
            "url": unit_url(into["code"]),
        }
        features.append(feature(text, properties, f"{old.unit.code}@{old.pk}"))
    return features


# --------------------------------------------------------------------------------------------
# Workstations


def _closure_30_days(units: list[Unit]) -> dict[int, tuple[int, int]]:
    """(closed on time, due to close) over the last 30 days, per unit id."""
    end = timezone.now()
    found = indicators_of_units(units, end - datetime.timedelta(days=30), end)
    return {pk: (i.closed_on_time, i.due_to_close) for pk, i in found.items()}


# The incident column that names a unit of each kind (incidents are denormalised).
INCIDENT_UNIT_FIELDS = {
    UnitKind.STREET: "street_id",
    UnitKind.COMMUNITY: "community_id",
    UnitKind.VILLAGE: "community_id",
    UnitKind.GRID: "grid_id",
    UnitKind.MICROGRID: "unit_id",
}


def _open_counts(user, units: list[Unit]) -> dict[int, tuple[int, int]]:
    """(open, overdue) incidents in each unit, in the user's scope: one grouped query per
    unit kind, on the incident's column for that level."""
    now = timezone.now()
    found = {u.pk: (0, 0) for u in units}
    base = incidents_for(user).exclude(state__in=FINAL_STATES).order_by()
    by_kind: dict[str, list[int]] = defaultdict(list)
    for unit in units:
        if unit.kind in INCIDENT_UNIT_FIELDS:
            by_kind[INCIDENT_UNIT_FIELDS[unit.kind]].append(unit.pk)
    for field, ids in by_kind.items():
        rows = (
            base.filter(**{f"{field}__in": ids})
            .values(field)
            .annotate(open=Count("id"), overdue=Count("id", filter=Q(deadline__lt=now)))
            .values_list(field, "open", "overdue")
        )
        for pk, n_open, n_overdue in rows:
            found[pk] = (n_open, n_overdue)
    return found


def workstation_facts(user, stations: list[Workstation]) -> dict[int, dict]:
    """Per workstation: served units, staff by role, open and overdue incidents and the
    on-time closure rate of the last 30 days over its units."""
    units = {u.pk: u for s in stations for u in s.units.all()}
    staff = _staff(list(units), timezone.localdate())
    closure = _closure_30_days(list(units.values()))
    counts = _open_counts(user, list(units.values()))
    facts = {}
    labels = dict(Role.choices)
    for station in stations:
        served = list(station.units.all())
        roles: Counter = Counter()
        names: dict[str, list[str]] = defaultdict(list)
        for unit in served:
            for role, name in staff.get(unit.pk, []):
                roles[role] += 1
                names[role].append(name)
        on_time = sum(closure[u.pk][0] for u in served)
        due = sum(closure[u.pk][1] for u in served)
        facts[station.pk] = {
            "name": station.name,
            "address": station.address,
            "pilot": station.pilot,
            "units": [{"code": u.code, "name": u.name, "url": unit_url(u.code)} for u in served],
            "staff": [
                {"role": str(labels.get(role, role)), "count": n, "names": names[role][:5]}
                for role, n in sorted(roles.items())
            ],
            "open": sum(counts[u.pk][0] for u in served),
            "overdue": sum(counts[u.pk][1] for u in served),
            "on_time_closure_30d": round(on_time / due, 4) if due else None,
            "due_to_close_30d": due,
        }
    return facts


def scoped_workstations(user):
    return in_scope(Workstation.objects.all(), user, "units").distinct().order_by("name")


def with_units(stations: list[Workstation], user) -> list[Workstation]:
    """The stations with those of their served units `user` may see loaded (the few fields
    the maps use): units, staff and rates of other units stay out of the popups."""
    units = in_scope(Unit.objects.all(), user).only("id", "code", "name", "path", "kind")
    units = units.order_by("code")
    prefetch_related_objects(stations, Prefetch("units", queryset=units))
    return stations


# Workstation facts (incident counts, the 30-day closure rate) change slowly and cost a
# KPI query over every served unit: they are kept this many seconds per user and stations,
# in the cache the server's workers share.
WORKSTATION_FACTS_SECONDS = 60


# What a workstation feature carries on a map view (its colour and tooltip); its facts —
# address, served units, staff, incident counts, the closure rate: a popup's worth, and a
# KPI query to compute — come with ?id=… when the popup opens, or in the download.
WORKSTATION_SUMMARY = ("name", "pilot")


def workstations_layer(user, view: View, station_id: str | None = None) -> str:
    """The scoped workstations in the view's box: on a map view (a zoom given) each with
    its WORKSTATION_SUMMARY, without a zoom (the download) or for one station (`station_id`)
    with all its facts."""
    stations = list(scoped_workstations(user))
    if station_id is not None:
        if not re.fullmatch(r"[0-9]{1,18}", station_id):
            raise LayerError(_("id=%(raw)r is not a workstation id") % {"raw": station_id})
        stations = [s for s in stations if s.pk == int(station_id)]
        view = View(None, view.zoom, view.crs)
    if not stations:
        return feature_collection([])
    lon = np.array([s.location.x for s in stations])
    lat = np.array([s.location.y for s in stations])
    lon, lat = to_display(lon, lat, view.crs)
    shown = [
        (station, float(x), float(y))
        for station, x, y in zip(stations, lon, lat, strict=True)
        if not view.box or (view.box[0] <= x <= view.box[2] and view.box[1] <= y <= view.box[3])
    ]
    if not shown:
        return feature_collection([])
    if view.zoom is not None and station_id is None:  # a map view
        return feature_collection(
            feature(point(x, y), {"name": s.name, "pilot": s.pilot}, s.pk) for s, x, y in shown
        )
    ids = ",".join(str(s.pk) for s, _x, _y in shown)
    key = f"workstation-facts:{user.pk}:{hashlib.sha1(ids.encode()).hexdigest()}"
    facts = caches[CACHE_ALIAS].get(key)
    if facts is None:
        facts = workstation_facts(user, with_units([s for s, _x, _y in shown], user))
        caches[CACHE_ALIAS].set(key, facts, WORKSTATION_FACTS_SECONDS)
    return feature_collection(feature(point(x, y), facts[s.pk], s.pk) for s, x, y in shown)


def workstation_units_layer(user, view: View) -> str:
    served: dict[int, list[Workstation]] = defaultdict(list)
    for station in with_units(list(scoped_workstations(user)), user):
        for unit in station.units.all():
            served[unit.pk].append(station)
    kinds = set(Unit.objects.filter(pk__in=served).values_list("kind", flat=True))
    features = []
    for kind in sorted(kinds):
        prepared, picked, _units = _selected(kind, user, view, Q(pk__in=list(served)))
        rows = _unit_rows([int(prepared.unit_ids[i]) for i in picked])
        texts = prepared.geojson[view.band]
        for i in picked:
            unit_id = int(prepared.unit_ids[i])
            stations = served[unit_id]
            properties = {
                "code": rows[unit_id]["code"],
                "name": rows[unit_id]["name"],
                "kind": kind,
                "workstations": [s.name for s in stations],
                "pilot": any(s.pilot for s in stations),
                "url": unit_url(rows[unit_id]["code"]),
            }
            features.append(feature(texts[i], properties, rows[unit_id]["code"]))
    return feature_collection(features)


# --------------------------------------------------------------------------------------------
# Incidents


class X(GeoFunc):
    function = "ST_X"
    output_field = FloatField()


class Y(GeoFunc):
    function = "ST_Y"
    output_field = FloatField()


def hazard_incidents(user, params, view: View):
    """The incidents of the hazard map: the list filters, then the box."""
    qs = filter_incidents(incidents_for(user), params).order_by()
    box = box_in_wgs84(view)
    if box is not None:
        qs = qs.filter(location__bboverlaps=Polygon.from_bbox(box))
    return qs


def raw_rows(qs) -> list[tuple]:
    """The rows of a values_list() queryset of plain numbers straight from the cursor: for
    100,000 incidents Django's per-row converters cost more than the query."""
    sql, params = qs.query.get_compiler(using=qs.db).as_sql()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _in_display_box(lon: np.ndarray, lat: np.ndarray, view: View) -> np.ndarray:
    """Which points lie in the view's box (in the display CRS: the database was asked with a
    margin around a GCJ-02 box)."""
    if view.box is None:
        return np.ones(len(lon), dtype=bool)
    x0, y0, x1, y1 = view.box
    return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def _late_flag(now):
    return Case(
        When(Q(deadline__lt=now) & ~Q(state__in=FINAL_STATES), then=1),
        default=0,
    )


def _cell_size(zoom: int | None, pixels: int) -> float:
    """Degrees per `pixels` screen pixels at `zoom` (web mercator, at the equator)."""
    return pixels * 360.0 / (256 * 2 ** (zoom if zoom is not None else 16))


def _cells(lon: np.ndarray, lat: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """(cell index of each point, unique cells) on a grid of `size` degrees."""
    cx = np.floor(lon / size).astype(np.int64)
    cy = np.floor(lat / size).astype(np.int64)
    # one integer per cell (a 1-D unique is many times faster than a row-wise one)
    x0, y0 = (cx.min(), cy.min()) if len(cx) else (0, 0)
    span = int(cy.max() - y0) + 1 if len(cy) else 1
    keys = (cx - x0) * span + (cy - y0)
    cells, index = np.unique(keys, return_inverse=True)
    return index.reshape(-1), cells


def incidents_layer(user, params, view: View) -> str:
    """Incident markers: one per incident where a screen cell holds one (or from zoom
    SINGLE_MARKERS_ZOOM on), else one cluster per cell with its count and overdue count."""
    now = timezone.now()
    rows = raw_rows(
        hazard_incidents(user, params, view)
        .annotate(lx=X("location"), ly=Y("location"), late=_late_flag(now))
        .values_list("id", "lx", "ly", "late")
    )
    if not rows:
        return feature_collection([], total=0)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lon, lat = to_display(np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), view.crs)
    late = np.array([r[3] for r in rows], dtype=np.int64)
    inside = _in_display_box(lon, lat, view)
    ids, lon, lat, late = ids[inside], lon[inside], lat[inside], late[inside]
    total = len(ids)
    if not total:
        return feature_collection([], total=0)
    # a whole-layer download (no zoom) and close views: every incident on its own
    if view.zoom is None or view.zoom >= SINGLE_MARKERS_ZOOM:
        singles = np.arange(len(ids))
        clusters = []
    else:
        index, cells = _cells(lon, lat, _cell_size(view.zoom, CLUSTER_CELL_PX))
        sizes = np.bincount(index, minlength=len(cells))
        singles = np.flatnonzero(sizes[index] == 1)
        clusters = np.flatnonzero(sizes > 1)
        sum_x = np.bincount(index, weights=lon, minlength=len(cells))
        sum_y = np.bincount(index, weights=lat, minlength=len(cells))
        late_n = np.bincount(index, weights=late, minlength=len(cells))
    features = []
    for c in clusters:
        n = int(sizes[c])
        properties = {"cluster": True, "count": n, "overdue": int(late_n[c])}
        features.append(feature(point(sum_x[c] / n, sum_y[c] / n), properties))
    details = _incident_details([int(ids[i]) for i in singles], now)
    for i in singles:
        pk = int(ids[i])
        features.append(feature(point(float(lon[i]), float(lat[i])), details[pk], pk))
    return feature_collection(features, total=total)


def _incident_details(ids: list[int], now) -> dict[int, dict]:
    rows = Incident.objects.filter(pk__in=ids).values(
        "id",
        "state",
        "deadline",
        "reported_at",
        "category__code",
        "category__name",
        "category__police_relevant",
        "grid__name",
    )
    labels = dict(Incident._meta.get_field("state").choices)
    found = {}
    for r in rows:
        is_open = r["state"] not in FINAL_STATES
        found[r["id"]] = {
            "cluster": False,
            "number": r["id"],
            "category": f"{r['category__code']} {r['category__name']}",
            "state": r["state"],
            "state_label": str(labels.get(r["state"], r["state"])),
            "overdue": bool(is_open and r["deadline"] and r["deadline"] < now),
            "police_relevant": r["category__police_relevant"],
            "reported_at": timezone.localtime(r["reported_at"]).strftime("%Y-%m-%d %H:%M"),
            "grid": r["grid__name"] or "",
            "url": reverse("incident-detail", args=[r["id"]]),
        }
    return found


def incident_heat(user, params, view: View) -> dict:
    """Heat-map cells: {"points": [[lat, lon, weight], ...], "max": heaviest cell}."""
    rows = raw_rows(
        hazard_incidents(user, params, view)
        .annotate(lx=X("location"), ly=Y("location"))
        .values_list("lx", "ly")
    )
    if not rows:
        return {"points": [], "max": 0, "total": 0}
    lon, lat = to_display(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), view.crs)
    inside = _in_display_box(lon, lat, view)
    lon, lat = lon[inside], lat[inside]
    if not len(lon):
        return {"points": [], "max": 0, "total": 0}
    index, cells = _cells(lon, lat, _cell_size(view.zoom, HEAT_CELL_PX))
    weight = np.bincount(index, minlength=len(cells))
    sum_x = np.bincount(index, weights=lon, minlength=len(cells))
    sum_y = np.bincount(index, weights=lat, minlength=len(cells))
    points = [
        [round(sum_y[c] / weight[c], 6), round(sum_x[c] / weight[c], 6), int(weight[c])]
        for c in range(len(cells))
    ]
    return {"points": points, "max": int(weight.max()), "total": len(lon)}


def incident_density_layer(user, params, view: View) -> str:
    """Grids with the number of open incidents (after the filters) in each."""
    prepared, picked, units = _selected(UnitKind.GRID, user, view)
    ids = [int(prepared.unit_ids[i]) for i in picked]
    counts = (
        dict(
            filter_incidents(incidents_for(user), params)
            .exclude(state__in=FINAL_STATES)
            .filter(grid_id__in=ids)
            .order_by()
            .values_list("grid_id")
            .annotate(n=Count("id"))
            .values_list("grid_id", "n")
        )
        if ids
        else {}
    )
    rows = _unit_rows(ids, units)
    texts = prepared.geojson[view.band]
    features = []
    for i, unit_id in zip(picked, ids, strict=True):
        row = rows.get(unit_id)
        if row is None:  # retired or out of scope since the scope was read (MANY_UNITS)
            continue
        properties = {
            "code": row["code"],
            "name": row["name"],
            "open": counts.get(unit_id, 0),
            "households": row["households"],
            "url": unit_url(row["code"]),
        }
        features.append(feature(texts[i], properties, row["code"]))
    return feature_collection(features, max_open=max(counts.values(), default=0))


LAYERS = (
    "units",
    "problems",
    "courtyards",
    "workstations",
    "workstation_units",
    "incidents",
    "incident_heat",
    "incident_density",
)
