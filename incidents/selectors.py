"""Which incidents a user may see, and the list filters (issue #3 points 9 and 15).

`incidents_for` is grids.scoping.in_scope applied to incidents; every incident list (API,
pages, exports) starts from it. `filter_incidents` applies the list filters from query
parameters and raises ValueError naming the parameter when a value is wrong.
"""

import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope, scope_roots, sees_everything
from incidents.models import TWO_DIGITS_RE, Category, Incident, Source
from incidents.workflow import FINAL_STATES, State

UNIT_FIELDS = ("unit", "grid", "community", "street")
NO_UNITS = Q(unit__isnull=True, grid__isnull=True, community__isnull=True, street__isnull=True)
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off"}
SORTS = {
    "reported_at": ("reported_at", "id"),
    "-reported_at": ("-reported_at", "-id"),
    "deadline": ("deadline", "id"),
    "-deadline": ("-deadline", "-id"),
    "state": ("state", "-reported_at", "-id"),
    "-state": ("-state", "-reported_at", "-id"),
    "category": ("category__code", "-reported_at", "-id"),
    "-category": ("-category__code", "-reported_at", "-id"),
}


def _base() -> QuerySet:
    return Incident.objects.select_related("category", "street", "community", "grid", "unit")


def incidents_for(user) -> QuerySet:
    """The incidents `user` may see.

    An incident belongs to its micro-grid; when it has none, to its grid, community or
    street (the deepest one it has). Incidents outside every unit are seen by district
    administrators (users assigned to a district) and superusers.
    """
    qs = _base()
    if sees_everything(user):
        return qs
    visible = (
        in_scope(qs, user, "unit")
        | in_scope(qs.filter(unit__isnull=True), user, "grid")
        | in_scope(qs.filter(unit__isnull=True, grid__isnull=True), user, "community")
        | in_scope(
            qs.filter(unit__isnull=True, grid__isnull=True, community__isnull=True),
            user,
            "street",
        )
    )
    if any(root.kind == UnitKind.DISTRICT for root in scope_roots(user)):
        visible = visible | qs.filter(NO_UNITS)
    return visible


def _bool(params, name: str) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise ValueError(_("%(name)s=%(raw)r must be 1 or 0") % {"name": name, "raw": raw})


def _date(params, name: str) -> datetime.date | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            _("%(name)s=%(raw)r is not a date in the form YYYY-MM-DD") % {"name": name, "raw": raw}
        ) from None


def _start_of(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _getlist(params, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        values = params.getlist(name)
    else:
        value = params.get(name)
        values = value if isinstance(value, list | tuple) else [value]
    return [v for v in values if v not in (None, "")]


def filter_incidents(queryset: QuerySet, params) -> QuerySet:
    """Apply the list filters in `params` (a QueryDict or a dict); see the module docstring."""
    qs = queryset
    code = params.get("unit")
    if code:
        unit = Unit.objects.filter(code=code).only("path").first()
        if unit is None:
            raise ValueError(_("unit=%(code)r: no unit has this code") % {"code": code})
        below = Q()
        for field in UNIT_FIELDS:
            below |= Q(**{f"{field}__path__startswith": unit.path})
        qs = qs.filter(below)
    code = params.get("category")
    if code:
        if not Category.objects.filter(code=code).exists():
            raise ValueError(_("category=%(code)r: no category has this code") % {"code": code})
        qs = qs.filter(category__code=code)
    major = params.get("major")
    if major:
        if not TWO_DIGITS_RE.match(major):
            raise ValueError(_("major=%(raw)r must be two digits, e.g. 01") % {"raw": major})
        qs = qs.filter(category__major=major)
    states = _getlist(params, "state")
    if states:
        unknown = [s for s in states if s not in State.values]
        if unknown:
            raise ValueError(
                _("state=%(raw)r is not one of %(known)s")
                % {"raw": unknown[0], "known": ", ".join(State.values)}
            )
        qs = qs.filter(state__in=states)
    if (params.get("overdue") or "").lower() == "3x":
        qs = qs.filter(overdue_3x_at__lte=timezone.now()).exclude(state__in=FINAL_STATES)
    else:
        overdue = _bool(params, "overdue")
        if overdue is not None:
            late = Q(deadline__lt=timezone.now()) & ~Q(state__in=FINAL_STATES)
            qs = qs.filter(late) if overdue else qs.exclude(late)
    start, end = _date(params, "from"), _date(params, "to")
    if start and end and end < start:
        raise ValueError(_("to=%(to)s is before from=%(from)s") % {"to": end, "from": start})
    if start:
        qs = qs.filter(reported_at__gte=_start_of(start))
    if end:
        qs = qs.filter(reported_at__lt=_start_of(end + datetime.timedelta(days=1)))
    police = _bool(params, "police_relevant")
    if police is not None:
        qs = qs.filter(category__police_relevant=police)
    source = params.get("source")
    if source:
        if source not in Source.values:
            raise ValueError(
                _("source=%(raw)r is not one of %(known)s")
                % {"raw": source, "known": ", ".join(Source.values)}
            )
        qs = qs.filter(source=source)
    text = (params.get("q") or "").strip()
    if text:
        qs = qs.filter(Q(description__icontains=text) | Q(reporter_name__icontains=text))
    sort = params.get("sort")
    if sort:
        if sort not in SORTS:
            raise ValueError(
                _("sort=%(raw)r is not one of %(known)s") % {"raw": sort, "known": ", ".join(SORTS)}
            )
        qs = qs.order_by(*SORTS[sort])
    return qs
