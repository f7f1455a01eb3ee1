"""What the map pages show besides their layers: where to start, a unit with its family,
and the pilot / non-pilot comparison of streets. Everything is scoped with
grids.scoping.in_scope, like the layers."""

import datetime
import html
import json
from dataclasses import dataclass

import shapely
from django.contrib.gis.db.models import Extent
from django.db.models import Count, Q, Sum
from django.utils import timezone

from gis.crs import transform_geometry
from grids.geometry import to_shapely
from grids.kinds import UnitKind
from grids.models import BoundaryVersion, StaffAssignment, Unit, Workstation
from grids.scoping import in_scope, scope_roots, sees_everything
from incidents.kpis import indicators_of_units
from incidents.selectors import incidents_for
from incidents.workflow import FINAL_STATES
from maps.geometry_cache import shown_versions


def _display_bounds(extent, crs: str) -> list[list[float]] | None:
    if not extent:
        return None
    x0, y0, x1, y1 = extent
    if crs != "wgs84":
        box = transform_geometry(shapely.box(x0, y0, x1, y1), "wgs84", crs)
        x0, y0, x1, y1 = box.bounds
    return [[y0, x0], [y1, x1]]


def scope_bounds(user, crs: str = "wgs84") -> list[list[float]] | None:
    """[[south, west], [north, east]] around the units the user is assigned to (for
    superusers: around every current unit), or None when there is nothing to show."""
    versions = shown_versions()
    if sees_everything(user):
        top = versions.filter(unit__parent__isnull=True)
        extent = (top if top.exists() else versions).aggregate(e=Extent("geom"))["e"]
    else:
        roots = scope_roots(user)
        if not roots:
            return None
        extent = versions.filter(unit__in=roots).aggregate(e=Extent("geom"))["e"]
    return _display_bounds(extent, crs)


def _feature(version: BoundaryVersion, crs: str) -> dict:
    geom = to_shapely(version.geom)
    if crs != "wgs84":
        geom = transform_geometry(geom, "wgs84", crs)
    return {
        "type": "Feature",
        "geometry": json.loads(shapely.to_geojson(geom)),
        "properties": {
            # folium's tooltips insert property values as HTML
            "name": html.escape(version.unit.name),
            "code": html.escape(version.unit.code),
        },
    }


def _collection(versions, crs: str) -> dict:
    return {"type": "FeatureCollection", "features": [_feature(v, crs) for v in versions]}


@dataclass
class UnitFamily:
    outline: dict
    children: dict
    neighbours: dict
    bounds: list[list[float]] | None


def unit_family(unit: Unit, user, crs: str = "wgs84") -> UnitFamily | None:
    """The unit's current outline, its current children and the units of its kind that
    touch it (within the user's scope); None when the unit has no current boundary."""
    current = shown_versions().select_related("unit")
    version = current.filter(unit=unit).first()
    if version is None:
        return None
    children = current.filter(unit__parent=unit, unit__retired_on__isnull=True)
    neighbours = (
        current.filter(unit__kind=unit.kind, geom__touches=version.geom)
        .exclude(unit=unit)
        .filter(unit__in=in_scope(Unit.objects.all(), user))
    )
    return UnitFamily(
        outline=_feature(version, crs),
        children=_collection(children, crs),
        neighbours=_collection(neighbours, crs),
        bounds=_display_bounds(version.geom.extent, crs),
    )


@dataclass
class StreetRow:
    code: str
    name: str
    pilot: bool
    households: int
    grids: int
    open: int
    overdue: int
    closed_on_time: int
    due_to_close: int

    @property
    def on_time_closure(self) -> float | None:
        return self.closed_on_time / self.due_to_close if self.due_to_close else None

    @property
    def overdue_per_1000_households(self) -> float | None:
        return self.overdue * 1000 / self.households if self.households else None


def _total(rows: list[StreetRow], pilot: bool, name: str) -> StreetRow:
    return StreetRow(
        code="",
        name=name,
        pilot=pilot,
        households=sum(r.households for r in rows),
        grids=sum(r.grids for r in rows),
        open=sum(r.open for r in rows),
        overdue=sum(r.overdue for r in rows),
        closed_on_time=sum(r.closed_on_time for r in rows),
        due_to_close=sum(r.due_to_close for r in rows),
    )


def street_comparison(user, days: int = 30) -> list[StreetRow]:
    """Streets in scope with pilot flag (a pilot workstation serves a unit in the street),
    households, grids, open and overdue incidents and on-time closure over `days` days."""
    streets = list(
        in_scope(Unit.objects.filter(kind=UnitKind.STREET, retired_on__isnull=True), user).order_by(
            "code"
        )
    )
    if not streets:
        return []
    pilot_paths = set()
    for path in (
        Workstation.objects.filter(pilot=True).values_list("units__path", flat=True).distinct()
    ):
        if path:
            pilot_paths.add(path)
    now = timezone.now()
    end = now
    kpis = indicators_of_units(streets, end - datetime.timedelta(days=days), end)
    open_incidents = incidents_for(user).exclude(state__in=FINAL_STATES).order_by()
    rows = []
    for street in streets:
        below = Unit.objects.filter(path__startswith=street.path, retired_on__isnull=True)
        households = below.filter(kind=UnitKind.GRID).aggregate(n=Count("id"), hh=Sum("households"))
        counts = open_incidents.filter(street=street).aggregate(
            open=Count("id"), overdue=Count("id", filter=Q(deadline__lt=now))
        )
        indicators = kpis[street.pk]
        rows.append(
            StreetRow(
                code=street.code,
                name=street.name,
                pilot=any(p.startswith(street.path) for p in pilot_paths),
                households=households["hh"] or 0,
                grids=households["n"],
                open=counts["open"],
                overdue=counts["overdue"],
                closed_on_time=indicators.closed_on_time,
                due_to_close=indicators.due_to_close,
            )
        )
    return rows


def comparison_totals(rows: list[StreetRow], pilot_name: str, other_name: str) -> list[StreetRow]:
    """The pilot streets and the other streets, each summed into one row."""
    return [
        _total([r for r in rows if r.pilot], True, pilot_name),
        _total([r for r in rows if not r.pilot], False, other_name),
    ]


def unit_staff(unit: Unit) -> list:
    """Today's staff assignments of the unit and of the units directly below it."""
    return list(
        StaffAssignment.objects.active_on(timezone.localdate())
        .filter(Q(unit=unit) | Q(unit__parent=unit))
        .select_related("member", "unit")
        .order_by("unit__code", "role", "member__name")
    )
