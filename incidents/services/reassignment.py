"""When boundaries change, open incidents follow their point into the new units.

`reassign_open_incidents` re-geotags the open incidents that a change can affect — those
assigned to a changed unit and those whose point lies in a changed unit's old or new
bounding box — as of the date the change takes effect. Those whose micro-grid, grid,
community or street differs are moved, each with a timeline entry saying from where to where
and why. Closed incidents keep the units they had (their history). Connected to
grids.signals.boundaries_changed, so every import (and, later, every redraw) does this.
"""

import datetime
from dataclasses import dataclass, field

from django.contrib.gis.geos import Polygon
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from grids.models import BoundaryVersion, Unit
from incidents.geotagging import BulkGeotagger
from incidents.models import Incident, TimelineEntry
from incidents.workflow import FINAL_STATES

LEVELS = ("street", "community", "grid", "unit")


@dataclass
class Reassignment:
    checked: int = 0
    moved: list[int] = field(default_factory=list)


# Above this many changed units, one bounding box around all of them is searched instead of
# one per unit (a large import touches a whole area anyway).
MANY_UNITS = 50


def _affected(unit_ids: list[int]):
    condition = Q()
    for level in LEVELS:
        condition |= Q(**{f"{level}_id__in": unit_ids})
    extents = [
        geom.extent
        for geom in BoundaryVersion.objects.filter(unit_id__in=unit_ids).values_list(
            "geom", flat=True
        )
    ]
    if len(extents) > MANY_UNITS:
        xmin, ymin, xmax, ymax = zip(*extents, strict=True)
        extents = [(min(xmin), min(ymin), max(xmax), max(ymax))]
    for extent in extents:
        condition |= Q(location__intersects=Polygon.from_bbox(extent))
    return Incident.objects.exclude(state__in=FINAL_STATES).filter(condition)


@transaction.atomic
def reassign_open_incidents(
    unit_ids, *, on: datetime.date | None = None, user=None, reason: str = ""
) -> Reassignment:
    """Move the open incidents whose units changed (see the module docstring)."""
    on = on or datetime.date.today()
    unit_ids = list(unit_ids)
    incidents = list(_affected(unit_ids).select_for_update())
    result = Reassignment(checked=len(incidents))
    if not incidents:
        return result
    tags = BulkGeotagger().tag(
        [i.location.x for i in incidents],
        [i.location.y for i in incidents],
        [on] * len(incidents),
    )
    codes = dict(Unit.objects.values_list("id", "code"))
    for incident, tag in zip(incidents, tags, strict=True):
        new = {
            "street": tag.street,
            "community": tag.community,
            "grid": tag.grid,
            "unit": tag.microgrid,
        }
        old = {level: getattr(incident, f"{level}_id") for level in LEVELS}
        if new == old:
            if incident.boundary_version_id != tag.version:
                incident.boundary_version_id = tag.version
                incident.near_boundary = tag.near_boundary
                incident.boundary_candidates = tag.candidates
                incident.save(
                    update_fields=["boundary_version", "near_boundary", "boundary_candidates"]
                )
            continue
        for name, value in tag.incident_fields().items():
            setattr(incident, name, value)
        # A move is a change of the incident: forms opened before it are stale.
        incident.lock_version += 1
        incident.save(
            update_fields=[
                *(f"{level}" for level in LEVELS),
                "boundary_version",
                "unassigned",
                "near_boundary",
                "boundary_candidates",
                "lock_version",
            ]
        )
        TimelineEntry.objects.create(
            incident=incident,
            actor=user,
            action="reassigned",
            from_state=incident.state,
            to_state=incident.state,
            note=reason or _("boundaries changed on %(date)s") % {"date": on.isoformat()},
            data={
                "from": {level: codes.get(old[level]) for level in LEVELS},
                "to": {level: codes.get(new[level]) for level in LEVELS},
            },
        )
        result.moved.append(incident.pk)
    return result


def on_boundaries_changed(sender, unit_ids, valid_from=None, user=None, **kwargs) -> None:
    reassign_open_incidents(unit_ids, on=valid_from, user=user)
