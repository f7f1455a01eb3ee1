"""The supervision page (督办, issue #3 point 13): overdue open incidents in the user's scope.

A table of the units at one level (street, community or grid) with their overdue and 3×
overdue counts (incidents.selectors.overdue_by_unit: one grouped query; units with nothing
overdue are left out), each count linking to the list page with the same filter, then the
overdue incidents themselves, most overdue first, with the working hours since the deadline
(computed for the shown page only). The table is also a CSV download.
"""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from grids.kinds import UnitKind
from grids.scoping import scope_roots, sees_everything
from incidents.exports import csv_response
from incidents.models import Incident
from incidents.selectors import LEVELS, incidents_for, most_overdue_first, overdue_by_unit
from incidents.views.lists import PAGE_SIZE, detail_url
from incidents.working_time import WorkingCalendar


def level_choices() -> list[tuple[str, str]]:
    return [(level, Incident._meta.get_field(level).verbose_name) for level in LEVELS]


def default_level(user) -> str:
    """One level below the user's highest unit: streets for a district, grids for a
    community."""
    kinds = {root.kind for root in scope_roots(user)}
    if sees_everything(user) or UnitKind.DISTRICT in kinds:
        return "street"
    if UnitKind.STREET in kinds:
        return "community"
    return "grid"


def _list_url(code: str, overdue: str) -> str:
    return f"{reverse('incident-list')}?{urlencode({'unit': code, 'overdue': overdue})}"


def unit_rows(user, level: str, now=None) -> list[dict]:
    """overdue_by_unit rows of the user's incidents, with the list page links."""
    rows = overdue_by_unit(incidents_for(user), level, now)
    for row in rows:
        if row["code"]:
            row["overdue_url"] = _list_url(row["code"], "1")
            row["overdue_3x_url"] = _list_url(row["code"], "3x")
    return rows


@login_required
def supervision(request):
    level = request.GET.get("level") or default_level(request.user)
    now = timezone.now()
    try:
        units = unit_rows(request.user, level, now)
    except ValueError as exc:
        error, units, status = str(exc), [], 400
    else:
        error, status = None, 200
    page = Paginator(most_overdue_first(incidents_for(request.user), now), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    calendar = WorkingCalendar.from_settings()
    rows = list(page.object_list)
    for incident in rows:
        incident.url = detail_url(incident.pk)
        incident.hours_overdue = calendar.working_hours_between(incident.deadline, now)
    context = {
        "error": error,
        "level": level,
        "levels": level_choices(),
        "units": units,
        "page": page,
        "rows": rows,
    }
    return render(request, "incidents/supervision.html", context, status=status)


@login_required
def supervision_export(request):
    level = request.GET.get("level") or default_level(request.user)
    try:
        units = unit_rows(request.user, level)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    header = [
        _("code"),
        Incident._meta.get_field(level).verbose_name,
        _("overdue"),
        _("3× overdue"),
    ]
    rows = ([u["code"], u["name"], u["overdue"], u["overdue_3x"]] for u in units)
    return csv_response(f"supervision-{level}.csv", header, rows)
