"""The police liaison page (issue #3 point 12).

Police-relevant incidents and safety hazards (incidents.selectors.police_and_safety) in the
user's scope: open overdue ones on top (3× overdue first), then the newest; filters for
open only (default) or all, and a reporting period. Beside the list, counts per grid for
the last 7 and 30 days with the open and overdue ones, in one grouped query. For police
liaisons, district administrators and superusers; anyone else gets 403.
"""

import datetime

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from grids.roles import DISTRICT_ADMIN, POLICE_LIAISON
from grids.scoping import sees_everything
from incidents.selectors import filter_incidents, incidents_for, police_and_safety
from incidents.services.transitions import roles_of
from incidents.workflow import FINAL_STATES

PAGE_SIZE = 50
ROLES = frozenset({POLICE_LIAISON, DISTRICT_ADMIN})
SHOW_CHOICES = ("open", "all")
COUNT_WINDOWS_DAYS = (7, 30)


def may_see(user) -> bool:
    """Police liaisons, district administrators and superusers."""
    return sees_everything(user) or bool(roles_of(user) & ROLES)


def _open() -> Q:
    return ~Q(state__in=FINAL_STATES)


def most_urgent_first(queryset: QuerySet, now: datetime.datetime) -> QuerySet:
    """Open 3× overdue incidents, then open overdue ones, then the rest; newest first
    within each group."""
    return queryset.annotate(
        urgency=Case(
            When(_open() & Q(overdue_3x_at__lte=now), then=Value(0)),
            When(_open() & Q(deadline__lt=now), then=Value(1)),
            default=Value(2),
            output_field=IntegerField(),
        )
    ).order_by("urgency", "-reported_at", "-id")


def window_start(now: datetime.datetime, days: int) -> datetime.datetime:
    """Local midnight starting the last `days` days (today included)."""
    first = timezone.localtime(now).date() - datetime.timedelta(days=days - 1)
    return timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))


def counts_per_grid(queryset: QuerySet, now: datetime.datetime) -> list[dict]:
    """Per grid (one grouped query): incidents reported in the last 7 and 30 days, and the
    open, overdue and 3× overdue ones among all. Rows without a grid come last (code None)."""
    # The last 7 days are today and the 6 days before it (local dates), as the page's
    # "last 7 days" link filters; likewise 30.
    week, month = (window_start(now, days) for days in COUNT_WINDOWS_DAYS)
    is_open = _open()
    recent = Q(reported_at__gte=month)
    rows = (
        queryset.filter(recent | is_open)
        .order_by()
        .values(code=F("grid__code"), name=F("grid__name"), community_name=F("community__name"))
        .annotate(
            last_7_days=Count("id", filter=Q(reported_at__gte=week)),
            last_30_days=Count("id", filter=recent),
            open_count=Count("id", filter=is_open),
            overdue=Count("id", filter=is_open & Q(deadline__lt=now)),
            overdue_3x=Count("id", filter=is_open & Q(overdue_3x_at__lte=now)),
        )
    )
    return sorted(rows, key=lambda r: (r["code"] is None, r["code"] or ""))


@login_required
def police(request):
    if not may_see(request.user):
        raise PermissionDenied(_("This page is for police liaisons and district administrators."))
    now = timezone.now()
    scoped = police_and_safety(incidents_for(request.user))
    show = request.GET.get("show") or "open"
    error = None
    incidents = scoped
    if show not in SHOW_CHOICES:
        error = _("show=%(raw)r is not one of %(known)s") % {
            "raw": show,
            "known": ", ".join(SHOW_CHOICES),
        }
    elif show == "open":
        incidents = incidents.filter(_open())
    try:
        incidents = filter_incidents(
            incidents, {"from": request.GET.get("from"), "to": request.GET.get("to")}
        )
    except ValueError as problem:
        error = error or str(problem)
    if error:
        incidents = incidents.none()
    page = Paginator(most_urgent_first(incidents, now), PAGE_SIZE).get_page(request.GET.get("page"))
    grids = counts_per_grid(scoped, now)
    totals = {
        key: sum(r[key] for r in grids)
        for key in ("last_7_days", "last_30_days", "open_count", "overdue", "overdue_3x")
    }
    today = timezone.localdate()
    return render(
        request,
        "incidents/police.html",
        {
            "page": page,
            "grids": grids,
            "totals": totals,
            "show": show,
            "start": request.GET.get("from") or "",
            "end": request.GET.get("to") or "",
            "error": error,
            "now": now,
            "last_7_from": (today - datetime.timedelta(days=6)).isoformat(),
            "last_30_from": (today - datetime.timedelta(days=29)).isoformat(),
        },
        status=400 if error else 200,
    )
