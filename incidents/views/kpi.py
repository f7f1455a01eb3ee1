"""The KPI page (issue #3 point 14) and its CSV export.

A unit in the user's scope (default: their scope roots) and a period (from/to dates, both
included, or a preset: this month, last month, last 30 days, this year). The table has the
unit and each of its child units as rows and the indicators of incidents.kpis as columns,
with the counts behind every rate; rates are coloured by incidents.bands. Each row links to
the KPI page of that unit (drill down). The export is the same table as CSV.
"""

import datetime
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grids.kinds import UnitKind
from grids.models import Unit
from grids.scoping import in_scope, scope_roots, sees_everything
from incidents.bands import band, thresholds
from incidents.exports import csv_response
from incidents.kpis import Indicators, indicators_of_units
from incidents.selectors import parse_date, reject_nul

PRESETS = {
    "this_month": gettext_lazy("this month"),
    "last_month": gettext_lazy("last month"),
    "last_30_days": gettext_lazy("last 30 days"),
    "this_year": gettext_lazy("this year"),
}
DEFAULT_PRESET = "this_month"


@dataclass(frozen=True)
class Rate:
    """A rate column: the Indicators field and the two counts it divides."""

    field: str
    part: str
    whole: str
    label: str
    part_label: str
    whole_label: str


RATES = (
    Rate(
        "valid_report_rate",
        "valid",
        "reports",
        gettext_lazy("valid-report rate"),
        gettext_lazy("valid reports"),
        gettext_lazy("reports"),
    ),
    Rate(
        "acceptance_rate",
        "accepted",
        "valid",
        gettext_lazy("acceptance rate"),
        gettext_lazy("accepted"),
        gettext_lazy("valid reports"),
    ),
    Rate(
        "on_time_check_rate",
        "checked_on_time",
        "due_to_check",
        gettext_lazy("on-time check rate"),
        gettext_lazy("checked on time"),
        gettext_lazy("due for a check"),
    ),
    Rate(
        "closure_rate",
        "closed",
        "due_to_close",
        gettext_lazy("closure rate"),
        gettext_lazy("closed"),
        gettext_lazy("due to close"),
    ),
    Rate(
        "on_time_closure_rate",
        "closed_on_time",
        "due_to_close",
        gettext_lazy("on-time closure rate"),
        gettext_lazy("closed on time"),
        gettext_lazy("due to close"),
    ),
    Rate(
        "rework_rate",
        "rework",
        "due_to_close",
        gettext_lazy("rework rate"),
        gettext_lazy("rework"),
        gettext_lazy("due to close"),
    ),
    Rate(
        "extension_rate",
        "extended",
        "due_to_close",
        gettext_lazy("extension rate"),
        gettext_lazy("extended"),
        gettext_lazy("due to close"),
    ),
)
# The counts of the CSV export, each once, in the order the rates use them.
COUNTS = (
    ("reports", gettext_lazy("reports")),
    ("valid", gettext_lazy("valid reports")),
    ("accepted", gettext_lazy("accepted")),
    ("handled", gettext_lazy("handled")),
    ("due_to_check", gettext_lazy("due for a check")),
    ("checked_on_time", gettext_lazy("checked on time")),
    ("due_to_close", gettext_lazy("due to close")),
    ("closed", gettext_lazy("closed")),
    ("closed_on_time", gettext_lazy("closed on time")),
    ("rework", gettext_lazy("rework")),
    ("extended", gettext_lazy("extended")),
    ("self_resolved", gettext_lazy("self-resolved")),
)


@dataclass(frozen=True)
class Period:
    first: datetime.date
    last: datetime.date  # included
    preset: str | None = None

    def bounds(self) -> tuple[datetime.datetime, datetime.datetime]:
        """[start, end) as aware datetimes: from the first day's midnight to the midnight
        after the last day."""

        def midnight(day: datetime.date) -> datetime.datetime:
            return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))

        return midnight(self.first), midnight(self.last + datetime.timedelta(days=1))


def preset_period(preset: str, today: datetime.date) -> Period:
    if preset == "this_month":
        return Period(today.replace(day=1), today, preset)
    if preset == "last_month":
        last = today.replace(day=1) - datetime.timedelta(days=1)
        return Period(last.replace(day=1), last, preset)
    if preset == "last_30_days":
        return Period(today - datetime.timedelta(days=29), today, preset)
    if preset == "this_year":
        return Period(today.replace(month=1, day=1), today, preset)
    raise ValueError(
        _("period=%(raw)r is not one of %(known)s") % {"raw": preset, "known": ", ".join(PRESETS)}
    )


def period_from(params, today: datetime.date) -> Period:
    """The period asked for: from/to dates (a missing end is today, a missing start the first
    of the end's month), else a preset (default this month). ValueError names a bad value."""
    first, last = parse_date(params, "from"), parse_date(params, "to")
    if first is None and last is None:
        return preset_period(params.get("period") or DEFAULT_PRESET, today)
    last = last or today
    first = first or last.replace(day=1)
    if last < first:
        raise ValueError(_("to=%(to)s is before from=%(from)s") % {"to": last, "from": first})
    return Period(first, last)


def _rows_of(user, code: str | None, period: Period) -> tuple[Unit | None, list[Unit]]:
    """The chosen unit (None when showing several scope roots) and the units of the rows."""
    units = in_scope(Unit.objects.all(), user)
    if code:
        chosen = units.filter(code=code).first()
        if chosen is None:
            raise Http404(_("unit %(code)s is not in your scope") % {"code": code})
    else:
        roots = scope_roots(user)
        if not roots and sees_everything(user):
            roots = list(Unit.objects.filter(parent__isnull=True, retired_on__isnull=True))
        if len(roots) != 1:
            return None, sorted(roots, key=lambda u: u.code)
        chosen = roots[0]
    alive = Q(retired_on__isnull=True) | Q(retired_on__gte=period.first)
    return chosen, [chosen, *chosen.children.filter(alive).order_by("code")]


def _cells(k: Indicators) -> list[dict]:
    cells = []
    for rate in RATES:
        value = getattr(k, rate.field)
        part, whole = getattr(k, rate.part), getattr(k, rate.whole)
        cells.append(
            {
                "rate": rate,
                "value": value,
                "percent": None if value is None else value * 100,
                "band": band(rate.field, value),
                "part": part,
                "whole": whole,
                "title": f"{rate.part_label} {part} / {rate.whole_label} {whole}",
            }
        )
    return cells


def kpi_table(user, params, today: datetime.date | None = None) -> dict:
    """Everything the page and the export show; ValueError names a bad parameter."""
    reject_nul(params)
    period = period_from(params, today or timezone.localdate())
    chosen, units = _rows_of(user, params.get("unit"), period)
    start, end = period.bounds()
    values = indicators_of_units(units, start, end)
    rows = [
        {
            "unit": unit,
            "is_chosen": unit == chosen,
            "k": values[unit.pk],
            "cells": _cells(values[unit.pk]),
        }
        for unit in units
    ]
    parent = None
    if chosen is not None and chosen.parent_id:
        parent = in_scope(Unit.objects.filter(pk=chosen.parent_id), user).first()
    return {"period": period, "chosen": chosen, "parent": parent, "rows": rows}


def _choices(user, chosen: Unit | None) -> list[tuple[str, str]]:
    """(code, indented name) of the units to choose from: in scope, above micro-grid level,
    in tree order."""
    units = list(
        in_scope(Unit.objects.filter(retired_on__isnull=True), user)
        .exclude(kind__in=(UnitKind.MICROGRID, UnitKind.COURTYARD))
        .only("code", "name", "path", "kind")
        .order_by("path")
    )
    if chosen is not None and chosen not in units:
        units.append(chosen)
    top = min((u.path.count("/") for u in units), default=0)
    return [(u.code, "\u3000" * (u.path.count("/") - top) + u.name) for u in units]


def _legend() -> list[dict]:
    """The thresholds of each coloured rate, in percent."""
    legend = []
    for rate in RATES:
        limits = thresholds(rate.field)
        if limits is not None:
            legend.append(
                {
                    "label": rate.label,
                    "good": limits.good * 100,
                    "fair": limits.fair * 100,
                    "lower_is_better": limits.lower_is_better,
                }
            )
    return legend


@login_required
def kpis(request):
    try:
        table = kpi_table(request.user, request.GET)
        error = None
    except ValueError as problem:
        table, error = {"rows": [], "chosen": None, "parent": None, "period": None}, str(problem)
    today = timezone.localdate()
    return render(
        request,
        "incidents/kpis.html",
        {
            **table,
            "error": error,
            "rates": RATES,
            "presets": PRESETS,
            "choices": _choices(request.user, table["chosen"]),
            "legend": _legend(),
            "assigned": bool(scope_roots(request.user)) or sees_everything(request.user),
            "start": request.GET.get("from") or "",
            "end": request.GET.get("to") or "",
            "today": today,
        },
        status=400 if error else 200,
    )


def _four(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


@login_required
def kpi_export(request):
    try:
        table = kpi_table(request.user, request.GET)
    except ValueError as problem:
        return HttpResponseBadRequest(str(problem), content_type="text/plain; charset=utf-8")
    header = [
        _("unit code"),
        _("unit"),
        _("kind"),
        *(label for _field, label in COUNTS),
        *(rate.label for rate in RATES),
        _("mean hours to close"),
    ]
    rows = [
        [
            row["unit"].code,
            row["unit"].name,
            row["unit"].get_kind_display(),
            *(getattr(row["k"], field) for field, _label in COUNTS),
            *(_four(getattr(row["k"], rate.field)) for rate in RATES),
            None if row["k"].mean_hours_to_close is None else f"{row['k'].mean_hours_to_close:.2f}",
        ]
        for row in table["rows"]
    ]
    period = table["period"]
    code = table["chosen"].code if table["chosen"] else "scope"
    filename = f"kpis-{code}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return csv_response(filename, header, rows)
