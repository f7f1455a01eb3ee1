"""Territory pages: the home page (units in my scope) and a unit page."""

import datetime

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope, scope_roots


@login_required
def home(request):
    roots = scope_roots(request.user)
    units = in_scope(Unit.objects.filter(retired_on__isnull=True), request.user)
    kind = request.GET.get("kind") or ""
    if kind in UnitKind.values:
        units = units.filter(kind=kind)
    page = Paginator(units.select_related("parent"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "grids/home.html",
        {"roots": roots, "page": page, "kinds": UnitKind.choices, "kind": kind},
    )


@login_required
def unit_detail(request, code: str):
    unit = get_object_or_404(in_scope(Unit.objects.all(), request.user), code=code)
    today = datetime.date.today()
    return render(
        request,
        "grids/unit_detail.html",
        {
            "unit": unit,
            "versions": unit.versions.select_related("created_by").prefetch_related(
                "sources__unit"
            ),
            "children": unit.children.filter(retired_on__isnull=True),
            "staff": unit.assignments.active_on(today).select_related("member"),
        },
    )
