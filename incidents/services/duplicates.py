"""Duplicate reports (issue 3, point 8): suggest them on intake, link them when staff decide.

`suggest_duplicates` finds open incidents of the same category within the category's
``duplicate_radius_m`` of a point and within ``settings.WEIGE_DUPLICATE_WINDOW_DAYS`` days of
the report time, nearest first. The database does the coarse work with a bounding box in
degrees (``location__intersects`` an envelope, which PostGIS answers from the spatial index
and SpatiaLite answers too); the exact distance in metres on the GRS80 ellipsoid is then
computed in Python for the few candidates and those outside the radius are dropped.

`mark_duplicate` closes an incident as a duplicate of an original: the "mark_duplicate"
transition and the link are made in one transaction, and the original gets a timeline
entry too so the link shows from both sides (``original.duplicates`` is the reverse FK).
"""

import datetime
import math
from dataclasses import dataclass

from django.conf import settings
from django.contrib.gis.geos import Polygon
from django.db import transaction
from django.utils.translation import gettext as _
from pyproj import Geod

from incidents.models import Category, Incident, TimelineEntry
from incidents.services.transitions import transition
from incidents.workflow import FINAL_STATES, State, TransitionRefused

METRES_PER_DEGREE = 111_320.0
# The box is only a pre-filter: make it a little larger than the radius so that the varying
# length of a degree (110.6–111.7 km of latitude) never drops a true candidate.
BOX_MARGIN = 1.1
GEOD = Geod(ellps="GRS80")


@dataclass(frozen=True)
class Suggestion:
    incident: Incident
    distance_m: float  # geodesic distance from the queried point, rounded to 0.1 m
    age: datetime.timedelta  # queried reported_at minus the incident's (negative: later)


def bounding_box(lon: float, lat: float, radius_m: float) -> Polygon:
    """A lon/lat envelope (SRID 4326) that contains every point within radius_m of lon/lat."""
    dlat = radius_m * BOX_MARGIN / METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return Polygon.from_bbox(
        (
            max(lon - dlon, -180.0),
            max(lat - dlat, -90.0),
            min(lon + dlon, 180.0),
            min(lat + dlat, 90.0),
        )
    )


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres on the GRS80 ellipsoid."""
    _az12, _az21, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return dist


def suggest_duplicates(
    *,
    lon: float,
    lat: float,
    category: Category,
    reported_at: datetime.datetime,
    exclude_id: int | None = None,
    limit: int = 10,
    user=None,
) -> list[Suggestion]:
    """Open incidents of `category` near (lon, lat) WGS84 around `reported_at`, nearest first;
    with `user`, only those the user may see (before the limit is applied)."""
    radius = float(category.duplicate_radius_m)
    window = datetime.timedelta(days=settings.WEIGE_DUPLICATE_WINDOW_DAYS)
    box = bounding_box(lon, lat, radius)
    box.srid = 4326
    candidates = (
        Incident.objects.filter(
            category=category,
            location__intersects=box,
            reported_at__gte=reported_at - window,
            reported_at__lte=reported_at + window,
        )
        .exclude(state__in=FINAL_STATES)
        .select_related("category")
    )
    if exclude_id is not None:
        candidates = candidates.exclude(pk=exclude_id)
    if user is not None:
        from incidents.selectors import incidents_for

        candidates = candidates.filter(pk__in=incidents_for(user).values("pk"))
    found = []
    for incident in candidates:
        dist = distance_m(lon, lat, incident.location.x, incident.location.y)
        if dist <= radius:
            found.append(Suggestion(incident, round(dist, 1), reported_at - incident.reported_at))
    found.sort(key=lambda s: (s.distance_m, abs(s.age), s.incident.pk))
    return found[:limit]


def suggest_for(incident: Incident, limit: int = 10, user=None) -> list[Suggestion]:
    """Possible duplicates of an existing incident (itself excluded)."""
    return suggest_duplicates(
        lon=incident.location.x,
        lat=incident.location.y,
        category=incident.category,
        reported_at=incident.reported_at,
        exclude_id=incident.pk,
        limit=limit,
        user=user,
    )


def _root(original: Incident) -> Incident:
    """Follow duplicate_of links to the incident that is not itself a duplicate."""
    seen = set()
    while original.duplicate_of_id is not None and original.pk not in seen:
        seen.add(original.pk)
        original = Incident.objects.get(pk=original.duplicate_of_id)
    return original


@transaction.atomic
def mark_duplicate(incident: Incident, original: Incident, user, note: str = "") -> Incident:
    """Close `incident` as a duplicate of `original` (or of the root original if `original`
    is itself a duplicate); returns the incident as it is now."""
    if original.pk == incident.pk:
        raise TransitionRefused(
            _("incident #%(id)s cannot be a duplicate of itself") % {"id": incident.pk}
        )
    # Lock the original so that it cannot be closed while we link to it.
    root = _root(Incident.objects.select_for_update().get(pk=original.pk))
    root = Incident.objects.select_for_update().get(pk=root.pk)
    if root.pk == incident.pk:
        raise TransitionRefused(
            _("incident #%(id)s cannot be a duplicate of itself (#%(original)s is its duplicate)")
            % {"id": incident.pk, "original": original.pk}
        )
    if root.state in FINAL_STATES:
        raise TransitionRefused(
            _(
                "incident #%(original)s is %(state)s: an incident can only be a duplicate of an "
                "open one"
            )
            % {"original": root.pk, "state": State(root.state).label}
        )
    reason = note.strip() or _("duplicate of #%(original)s") % {"original": root.pk}
    moved = transition(
        incident, "mark_duplicate", user, note=reason, data={"duplicate_of": root.pk}
    )
    Incident.objects.filter(pk=incident.pk).update(duplicate_of=root)
    TimelineEntry.objects.create(
        incident=root,
        actor=user if getattr(user, "is_authenticated", False) else None,
        action="duplicate_linked",
        from_state=root.state,
        to_state=root.state,
        note=_("#%(duplicate)s was marked as a duplicate of this incident")
        % {"duplicate": incident.pk},
        data={"duplicate": incident.pk},
    )
    moved.refresh_from_db()
    return moved
