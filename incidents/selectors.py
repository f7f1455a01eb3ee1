"""Which incidents a user may see, and the list filters (issue #3 points 9 and 15).

`incidents_for` is grids.scoping.in_scope applied to incidents; every incident list (API,
pages, exports) starts from it. `filter_incidents` applies the list filters from query
parameters and raises ValueError naming the parameter when a value is wrong.

``flag`` is "unassigned" (outside every unit) or "near_boundary" (awaiting a unit decision):
the incidents a district administrator or a chief has to look at.
``major`` is a 2-digit 大类 ("01": that class in both families, as dispatch rules read it)
or the family letter and the 大类 ("C01": component class 01 only). ``q`` is text in the
description or the reporter's name, or an incident number ("123" or "#123").

Supervision (督办, point 13): `overdue_by_unit` counts the overdue and 3× overdue open
incidents per street, community or grid in one grouped query; `most_overdue_first` orders
open overdue incidents for chasing: 3× overdue first, then the oldest deadline.
"""

import datetime

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope, scope_roots, sees_everything
from incidents.models import FAMILY_LETTERS, TWO_DIGITS_RE, Category, Incident, Source
from incidents.workflow import FINAL_STATES, State

UNIT_FIELDS = ("unit", "grid", "community", "street")
NO_UNITS = Q(unit__isnull=True, grid__isnull=True, community__isnull=True, street__isnull=True)
# flag=… : the incident field it selects on (each has a partial index).
FLAGS = {"unassigned": "unassigned", "near_boundary": "near_boundary"}
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

FAMILIES_BY_LETTER = {letter: family for family, letter in FAMILY_LETTERS.items()}
# Supervision levels: the incident field that names the unit of that level.
LEVELS = ("street", "community", "grid")


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


def sees_unit(user, deepest: int | None) -> bool:
    """Whether `user` would see an incident whose deepest unit is `deepest` (an id; None
    outside every unit): the rule of incidents_for, before the incident exists."""
    if sees_everything(user):
        return True
    if deepest is None:
        return any(root.kind == UnitKind.DISTRICT for root in scope_roots(user))
    return in_scope(Unit.objects.filter(pk=deepest), user).exists()


def _bool(params, name: str) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise ValueError(_("%(name)s=%(raw)r must be 1 or 0") % {"name": name, "raw": raw})


# Dates the filters accept: wide enough for any record, narrow enough that a day before or
# after, or midnight in UTC, is still a date.
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(2999, 12, 31)


def parse_date(params, name: str) -> datetime.date | None:
    """The date in parameter `name` (YYYY-MM-DD), None when empty; ValueError naming it."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        day = datetime.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            _("%(name)s=%(raw)r is not a date in the form YYYY-MM-DD") % {"name": name, "raw": raw}
        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(
            _("%(name)s=%(raw)s is outside %(first)s … %(last)s")
            % {"name": name, "raw": raw, "first": FIRST_DAY, "last": LAST_DAY}
        )
    return day


def reject_nul(params) -> None:
    """Refuse parameters with NUL characters (no database takes them in text)."""
    items = params.lists() if hasattr(params, "lists") else params.items()
    for name, values in items:
        for value in values if isinstance(values, list | tuple) else [values]:
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(_("%(name)s contains a NUL character") % {"name": name})


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
    reject_nul(params)
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
        family = FAMILIES_BY_LETTER.get(major[:1].upper())
        digits = major[1:] if family else major
        if not TWO_DIGITS_RE.match(digits):
            raise ValueError(_("major=%(raw)r must be two digits, e.g. 01") % {"raw": major})
        qs = qs.filter(category__major=digits)
        if family:
            qs = qs.filter(category__family=family)
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
        qs = qs.filter(_late_3x(timezone.now()))
    else:
        overdue = _bool(params, "overdue")
        if overdue is not None:
            late = _late(timezone.now())
            qs = qs.filter(late) if overdue else qs.exclude(late)
    start, end = parse_date(params, "from"), parse_date(params, "to")
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
    flag = params.get("flag")
    if flag:
        if flag not in FLAGS:
            raise ValueError(
                _("flag=%(raw)r is not one of %(known)s") % {"raw": flag, "known": ", ".join(FLAGS)}
            )
        qs = qs.filter(**{FLAGS[flag]: True})
    text = (params.get("q") or "").strip()
    if text:
        match = Q(description__icontains=text) | Q(reporter_name__icontains=text)
        number = text.removeprefix("#")
        if number.isdigit() and len(number) < 19:
            match |= Q(pk=int(number))  # the incident's number
        qs = qs.filter(match)
    sort = params.get("sort")
    if sort:
        if sort not in SORTS:
            raise ValueError(
                _("sort=%(raw)r is not one of %(known)s") % {"raw": sort, "known": ", ".join(SORTS)}
            )
        qs = qs.order_by(*SORTS[sort])
    return qs


def _late(now: datetime.datetime) -> Q:
    """Open and past the deadline: the `overdue=1` filter."""
    return Q(deadline__lt=now) & ~Q(state__in=FINAL_STATES)


def _late_3x(now: datetime.datetime) -> Q:
    """Open and three times the allowed working time gone: the `overdue=3x` filter."""
    return Q(overdue_3x_at__lte=now) & ~Q(state__in=FINAL_STATES)


def overdue_by_unit(
    queryset: QuerySet, level: str, now: datetime.datetime | None = None
) -> list[dict]:
    """Overdue and 3× overdue open incidents of `queryset`, counted per unit of `level`.

    One grouped query. Each row: ``code``, ``name`` (None for incidents without a unit at
    that level), ``overdue`` and ``overdue_3x`` — the counts the list filters
    ``unit=<code>&overdue=1`` and ``unit=<code>&overdue=3x`` give. Units with nothing
    overdue are absent; rows come most 3× overdue first.
    """
    if level not in LEVELS:
        raise ValueError(
            _("level=%(raw)r is not one of %(known)s") % {"raw": level, "known": ", ".join(LEVELS)}
        )
    now = now or timezone.now()
    late, late_3x = _late(now), _late_3x(now)
    rows = (
        queryset.filter(late | late_3x)
        .order_by()
        .values(code=F(f"{level}__code"), name=F(f"{level}__name"))
        .annotate(overdue=Count("id", filter=late), overdue_3x=Count("id", filter=late_3x))
    )
    return sorted(rows, key=lambda r: (-r["overdue_3x"], -r["overdue"], r["code"] or "\uffff"))


def most_overdue_first(queryset: QuerySet, now: datetime.datetime | None = None) -> QuerySet:
    """The open incidents of `queryset` past their deadline: 3× overdue first, then by
    deadline (oldest first)."""
    now = now or timezone.now()
    return (
        queryset.filter(_late(now))
        .annotate(
            not_3x=Case(
                When(overdue_3x_at__lte=now, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("not_3x", "deadline", "id")
    )


# Besides the police-relevant categories, the police liaison follows these event classes
# (family letter and 大类, as in the `major` filter): 08 治安隐患 public-security hazards and
# 09 安全隐患 safety hazards (DOMAIN.md §3).
POLICE_HAZARD_CLASSES = ("E08", "E09")


def police_and_safety(queryset: QuerySet) -> QuerySet:
    """The incidents of `queryset` in a police-relevant category or in one of the
    POLICE_HAZARD_CLASSES (the police liaison page, issue #3 point 12)."""
    hazards = Q()
    for prefix in POLICE_HAZARD_CLASSES:
        hazards |= Q(category__code__startswith=prefix)
    return queryset.filter(Q(category__police_relevant=True) | hazards)
