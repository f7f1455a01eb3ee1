"""The incident list page and its CSV export (issue #3 point 9).

Both read the same GET parameters as the API list (incidents.selectors.filter_incidents) from
the user's scope (incidents_for), so a page, its export and the API always agree. A wrong
parameter is shown above the filter form with status 400 (in the export: a plain-text 400).
"""

from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope
from incidents.exports import incident_csv
from incidents.models import Category, Source
from incidents.selectors import filter_incidents, incidents_for
from incidents.workflow import State

PAGE_SIZE = 50
# Units offered in the unit filter: down to grid level (a micro-grid code can be typed).
FILTER_UNIT_KINDS = (
    UnitKind.DISTRICT,
    UnitKind.STREET,
    UnitKind.COMMUNITY,
    UnitKind.VILLAGE,
    UnitKind.GRID,
)
OVERDUE_CHOICES = [
    ("", _("any")),
    ("1", _("overdue")),
    ("0", _("not overdue")),
    ("3x", _("3× overdue")),
]
YES_NO_CHOICES = [("", _("any")), ("1", _("yes")), ("0", _("no"))]
FLAG_CHOICES = [
    ("", _("any")),
    ("unassigned", _("unassigned")),
    ("near_boundary", _("near a boundary")),
]
# Sortable column headers: (selector sort key, header).
SORTABLE = {
    "category": _("category"),
    "state": _("state"),
    "reported_at": _("reported at"),
    "deadline": _("deadline"),
}
DEFAULT_SORT = "-reported_at"  # Incident.Meta.ordering


def detail_url(pk: int) -> str:
    try:
        return reverse("incident-detail", args=[pk])
    except NoReverseMatch:
        return f"/incidents/{pk}/"


def unit_choices(user) -> list[tuple[str, str]]:
    """(code, indented name) of the current units in the user's scope, down to grids."""
    units = in_scope(
        Unit.objects.filter(retired_on__isnull=True, kind__in=FILTER_UNIT_KINDS),
        user,
    ).order_by("path")
    rows = list(units.values_list("code", "name", "path"))
    top = min((path.count("/") for _code, _name, path in rows), default=0)
    return [(code, "\u3000" * (path.count("/") - top) + name) for code, name, path in rows]


def category_groups() -> list[dict]:
    """Categories grouped by 大类: [{"major": "C01", "label": "C01 公用设施", "categories"}]."""
    categories = Category.objects.only("code", "major", "major_name", "name", "family")
    groups = []
    for major, members in groupby(
        categories.order_by("family", "major", "minor"), key=lambda c: c.code[:3]
    ):
        members = list(members)
        groups.append(
            {
                "major": major,
                "label": f"{major} {members[0].major_name}",
                "categories": [(c.code, f"{c.code} {c.name}") for c in members],
            }
        )
    return groups


def sort_headers(current: str) -> dict[str, dict]:
    """Per sortable column: the sort a click asks for (toggling asc/desc) and its arrow."""
    current = current or DEFAULT_SORT
    headers = {}
    for key, label in SORTABLE.items():
        if current == key:
            headers[key] = {"label": label, "sort": f"-{key}", "arrow": "▲"}
        elif current == f"-{key}":
            headers[key] = {"label": label, "sort": key, "arrow": "▼"}
        else:
            headers[key] = {"label": label, "sort": key, "arrow": ""}
    return headers


def _form_values(params) -> dict:
    names = (
        "unit",
        "category",
        "major",
        "overdue",
        "from",
        "to",
        "police_relevant",
        "source",
        "flag",
    )
    values = {name: params.get(name, "") for name in names}
    values["q"] = params.get("q", "")
    values["states"] = params.getlist("state")
    values["sort"] = params.get("sort", "")
    return values


@login_required
def incident_list(request):
    error, page, rows = None, None, []
    try:
        incidents = filter_incidents(incidents_for(request.user), request.GET)
    except ValueError as exc:
        error = str(exc)
    else:
        page = Paginator(incidents, PAGE_SIZE).get_page(request.GET.get("page"))
        rows = list(page.object_list)
        for incident in rows:
            incident.url = detail_url(incident.pk)
    values = _form_values(request.GET)
    units = unit_choices(request.user)
    context = {
        "error": error,
        "page": page,
        "rows": rows,
        "values": values,
        "units": units,
        "unit_name": dict(units).get(values["unit"], "").strip("\u3000"),
        "category_groups": category_groups(),
        "states": State.choices,
        "sources": Source.choices,
        "overdue_choices": OVERDUE_CHOICES,
        "yes_no": YES_NO_CHOICES,
        "flag_choices": FLAG_CHOICES,
        "headers": sort_headers(values["sort"]),
    }
    return render(request, "incidents/list.html", context, status=400 if error else 200)


@login_required
def incident_export(request):
    try:
        incidents = filter_incidents(incidents_for(request.user), request.GET)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    return incident_csv(incidents)
