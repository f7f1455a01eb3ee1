"""Deciding where an incident belongs when the geometry leaves a doubt (issue 3, point 10).

A point within WEIGE_NEAR_BOUNDARY_M metres of another micro-grid is geotagged into one unit,
flagged ``near_boundary``, and the others are listed as its candidates (incidents.geotagging).
A grid chief or district administrator then confirms the unit (`confirm_unit`) or moves the
incident to one of the candidate micro-grids (`move_to_unit`). An unassigned incident (outside
every micro-grid) is given one by a district administrator (`assign_unit`): any micro-grid in
their scope whose current boundary contains the point or comes within ASSIGN_NEAR_M metres.

Each decision is one transaction made against the lock_version the user saw (like a
transition, a stale one is refused), adds an append-only timeline entry whose data holds the
unit codes before and after, and clears ``near_boundary``. A move takes the candidate's
grid, community and street from the boundary versions valid at the placement date; an
assignment uses today's boundaries. Closed incidents keep their units (their history).
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from grids.kinds import UnitKind
from grids.lookup import candidates as boundary_candidates
from grids.models import BoundaryVersion, Unit
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF
from grids.scoping import in_scope
from incidents.models import Incident, TimelineEntry
from incidents.services.transitions import roles_of
from incidents.workflow import FINAL_STATES

REVIEWERS = frozenset({GRID_CHIEF, DISTRICT_ADMIN})
ASSIGNERS = frozenset({DISTRICT_ADMIN})
# How far from an unassigned incident's point a micro-grid may be offered (metres).
ASSIGN_NEAR_M = 100.0
LEVEL_OF_KIND = {
    UnitKind.MICROGRID: "unit",
    UnitKind.GRID: "grid",
    UnitKind.COMMUNITY: "community",
    UnitKind.VILLAGE: "community",
    UnitKind.STREET: "street",
}
LEVELS = ("street", "community", "grid", "unit")


class BoundaryReviewRefused(Exception):
    """A unit decision that is not allowed; the message says why."""


@dataclass(frozen=True)
class Option:
    """A micro-grid the incident may go to and its distance from the point (0: contains it)."""

    unit: Unit
    distance_m: float
    boundary_version_id: int | None = None


def placement_date(incident: Incident) -> datetime.date:
    """The date the incident's units were chosen at: the local report day, or the nearest
    day on which its boundary version was valid (a boundary change may have moved it since).
    """
    day = timezone.localtime(incident.reported_at).date()
    version = incident.boundary_version
    if version is None:
        return day
    if day < version.valid_from:
        return version.valid_from
    if version.valid_to is not None and day >= version.valid_to:
        return version.valid_to - datetime.timedelta(days=1)
    return day


def can_review(user) -> bool:
    return bool(roles_of(user) & REVIEWERS)


def can_assign(user) -> bool:
    return bool(roles_of(user) & ASSIGNERS)


def candidate_options(incident: Incident) -> list[Option]:
    """The candidate micro-grids recorded by geotagging (the current one and units retired
    since left out)."""
    listed = [
        c
        for c in incident.boundary_candidates or []
        if c.get("kind") == UnitKind.MICROGRID and c.get("id") != incident.unit_id
    ]
    units = Unit.objects.in_bulk([c["id"] for c in listed])
    options, seen = [], set()
    for c in sorted(listed, key=lambda c: c.get("distance_m") or 0.0):
        unit = units.get(c["id"])
        retired = unit is not None and unit.retired_on and unit.retired_on <= timezone.localdate()
        if unit is not None and not retired and unit.pk not in seen:
            seen.add(unit.pk)
            options.append(
                Option(unit, float(c.get("distance_m") or 0.0), c.get("boundary_version_id"))
            )
    return options


def assignable_options(incident: Incident, user) -> list[Option]:
    """Micro-grids in the user's scope whose current boundary contains the point or comes
    within ASSIGN_NEAR_M metres of it, nearest first."""
    found = [
        c
        for c in boundary_candidates(
            incident.location.x, incident.location.y, timezone.localdate(), ASSIGN_NEAR_M
        )
        if c.kind == UnitKind.MICROGRID and c.distance_m <= ASSIGN_NEAR_M
    ]
    allowed = set(
        in_scope(
            Unit.objects.filter(pk__in=[c.unit_id for c in found], retired_on__isnull=True), user
        ).values_list("pk", flat=True)
    )
    units = Unit.objects.in_bulk(allowed)
    found.sort(key=lambda c: (c.distance_m, c.code))
    return [
        Option(units[c.unit_id], c.distance_m, c.version_id) for c in found if c.unit_id in allowed
    ]


def _placement(unit: Unit, version: BoundaryVersion | None, on: datetime.date) -> dict:
    """The incident fields for `unit` (a micro-grid) and its ancestors as of `on`."""
    fields = {f"{level}_id": None for level in LEVELS}
    fields["unit_id"] = unit.pk
    fields["boundary_version_id"] = version.pk if version else None
    parent_id = version.parent_id if version else unit.parent_id
    seen = set()
    while parent_id is not None and parent_id not in seen:
        seen.add(parent_id)
        parent = Unit.objects.get(pk=parent_id)
        level = LEVEL_OF_KIND.get(parent.kind)
        if level is not None:
            fields[f"{level}_id"] = parent.pk
        parent_version = parent.version_at(on)
        parent_id = parent_version.parent_id if parent_version else parent.parent_id
    return fields


def _codes(incident: Incident) -> dict:
    return {level: getattr(getattr(incident, level), "code", None) for level in LEVELS}


def _decide(incident: Incident, user, action: str, note: str, fields: dict, data: dict):
    seen = incident.lock_version
    current = Incident.objects.select_for_update().get(pk=incident.pk)
    if current.lock_version != seen:
        raise BoundaryReviewRefused(
            _("incident #%(id)s was changed by someone else; reload it") % {"id": incident.pk}
        )
    if current.state in FINAL_STATES:
        raise BoundaryReviewRefused(
            _("incident #%(id)s is closed; it keeps its units") % {"id": incident.pk}
        )
    before = _codes(current)
    changes = {**fields, "near_boundary": False, "lock_version": F("lock_version") + 1}
    if "unit_id" in fields:
        changes["unassigned"] = fields["unit_id"] is None
    moved = Incident.objects.filter(pk=incident.pk, lock_version=seen).update(**changes)
    if moved != 1:
        raise BoundaryReviewRefused(
            _("incident #%(id)s was changed by someone else; reload it") % {"id": incident.pk}
        )
    current.refresh_from_db()
    TimelineEntry.objects.create(
        incident=current,
        actor=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        from_state=current.state,
        to_state=current.state,
        note=note,
        data={"from": before, "to": _codes(current), **data},
    )
    return current


def _require(user, roles, what: str) -> None:
    if not roles_of(user) & roles:
        raise BoundaryReviewRefused(
            _("%(what)s needs one of these roles: %(roles)s")
            % {"what": what, "roles": ", ".join(sorted(roles))}
        )


@transaction.atomic
def confirm_unit(incident: Incident, user, note: str = "") -> Incident:
    """Keep a near-boundary incident in its micro-grid; returns the incident as it is now."""
    _require(user, REVIEWERS, _("confirming the unit"))
    if not incident.near_boundary or incident.unit_id is None:
        raise BoundaryReviewRefused(
            _("incident #%(id)s is not flagged as near a boundary") % {"id": incident.pk}
        )
    candidates = [o.unit.code for o in candidate_options(incident)]
    return _decide(incident, user, "unit_confirmed", note, {}, {"candidates": candidates})


@transaction.atomic
def move_to_unit(incident: Incident, unit: Unit, user, note: str = "") -> Incident:
    """Move a near-boundary incident to one of its candidate micro-grids."""
    _require(user, REVIEWERS, _("moving to another unit"))
    if not incident.near_boundary:
        raise BoundaryReviewRefused(
            _("incident #%(id)s is not flagged as near a boundary") % {"id": incident.pk}
        )
    option = next((o for o in candidate_options(incident) if o.unit.pk == unit.pk), None)
    if option is None:
        raise BoundaryReviewRefused(
            _("%(unit)s is not a candidate unit of incident #%(id)s")
            % {"unit": unit.code, "id": incident.pk}
        )
    on = placement_date(incident)
    version = (
        BoundaryVersion.objects.filter(pk=option.boundary_version_id, unit=unit).first()
        or unit.version_at(on)
        or unit.current_version()
    )
    fields = _placement(unit, version, on)
    return _decide(incident, user, "unit_moved", note, fields, {})


@transaction.atomic
def assign_unit(incident: Incident, unit: Unit, user, note: str = "") -> Incident:
    """Give an unassigned incident a micro-grid (see assignable_options)."""
    _require(user, ASSIGNERS, _("assigning a unit"))
    if incident.unit_id is not None:
        raise BoundaryReviewRefused(
            _("incident #%(id)s already has a micro-grid") % {"id": incident.pk}
        )
    option = next((o for o in assignable_options(incident, user) if o.unit.pk == unit.pk), None)
    if option is None:
        raise BoundaryReviewRefused(
            _(
                "%(unit)s cannot take incident #%(id)s: it must be a micro-grid in your scope "
                "within %(near)d m of the point"
            )
            % {"unit": unit.code, "id": incident.pk, "near": ASSIGN_NEAR_M}
        )
    version = BoundaryVersion.objects.filter(pk=option.boundary_version_id).first()
    fields = _placement(unit, version, timezone.localdate())
    return _decide(
        incident, user, "unit_assigned", note, fields, {"distance_m": round(option.distance_m, 1)}
    )
