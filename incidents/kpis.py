"""Indicators (DOMAIN.md §5) per unit — any level, everything below it counts — and period.

The population is the incidents reported in [start, end) whose units lie in the unit's
subtree. From their timelines:

- valid reports: reports not voided (作废); valid-report rate = valid ÷ reports
- accepted (立案): incidents with an "accept" step; acceptance rate = accepted ÷ valid
- handled: incidents with a "handle" or "self_resolve" step
- due to close = handled + open incidents not handled whose deadline passed before `end`
- closure rate = closed ÷ due to close; on-time closure = closed by the deadline ÷ due
- on-time check rate = handled incidents checked ("check" or "rework") by their deadline ÷
  handled incidents (the check limit is folded into the incident's deadline here)
- rework rate = incidents with a "rework" step ÷ due; extension rate = incidents with an
  approved extension ÷ due
- self-resolved count; mean time to close in hours (report → close, closed incidents)

A rate with a zero denominator is None (shown as "—"), never 0 or 100%.
"""

import datetime
from dataclasses import asdict, dataclass

from incidents.models import Incident, TimelineEntry
from incidents.workflow import State


@dataclass
class Indicators:
    reports: int
    valid: int
    accepted: int
    handled: int
    due_to_close: int
    closed: int
    closed_on_time: int
    checked_on_time: int
    rework: int
    extended: int
    self_resolved: int
    valid_report_rate: float | None
    acceptance_rate: float | None
    on_time_check_rate: float | None
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None
    extension_rate: float | None
    mean_hours_to_close: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def indicators(unit, start: datetime.datetime, end: datetime.datetime) -> Indicators:
    """The indicators of `unit` (a grids Unit; None for everything) for [start, end)."""
    incidents = Incident.objects.filter(reported_at__gte=start, reported_at__lt=end)
    if unit is not None:
        incidents = incidents.filter(unit__path__startswith=unit.path) | incidents.filter(
            unit__isnull=True, grid__path__startswith=unit.path
        )
    rows = list(incidents.values("id", "state", "deadline", "reported_at", "closed_at"))
    steps: dict[int, dict[str, datetime.datetime]] = {r["id"]: {} for r in rows}
    for incident_id, action, at in (
        TimelineEntry.objects.filter(incident_id__in=list(steps))
        .values_list("incident_id", "action", "at")
        .order_by("at", "id")
    ):
        steps[incident_id].setdefault(action, at)
    reports = len(rows)
    valid = sum(1 for r in rows if r["state"] != State.VOID)
    accepted = sum(1 for r in rows if "accept" in steps[r["id"]])
    handled_rows = [r for r in rows if {"handle", "self_resolve"} & steps[r["id"]].keys()]
    handled = len(handled_rows)
    overdue_unhandled = sum(
        1
        for r in rows
        if r not in handled_rows
        and r["state"] not in (State.CLOSED, State.VOID, State.DUPLICATE)
        and r["deadline"] is not None
        and r["deadline"] < end
    )
    due = handled + overdue_unhandled
    closed_rows = [r for r in rows if r["state"] == State.CLOSED and r["closed_at"]]
    closed = len(closed_rows)
    closed_on_time = sum(
        1 for r in closed_rows if r["deadline"] and r["closed_at"] <= r["deadline"]
    )

    def checked_in_time(r) -> bool:
        done = [steps[r["id"]].get(a) for a in ("check", "rework")]
        done = [t for t in done if t is not None]
        return bool(done) and r["deadline"] is not None and min(done) <= r["deadline"]

    checked_on_time = sum(1 for r in handled_rows if checked_in_time(r))
    rework = sum(1 for r in rows if "rework" in steps[r["id"]])
    extended = sum(1 for r in rows if "approve_extension" in steps[r["id"]])
    self_resolved = sum(1 for r in rows if "self_resolve" in steps[r["id"]])
    hours = [(r["closed_at"] - r["reported_at"]).total_seconds() / 3600 for r in closed_rows]
    return Indicators(
        reports=reports,
        valid=valid,
        accepted=accepted,
        handled=handled,
        due_to_close=due,
        closed=closed,
        closed_on_time=closed_on_time,
        checked_on_time=checked_on_time,
        rework=rework,
        extended=extended,
        self_resolved=self_resolved,
        valid_report_rate=_rate(valid, reports),
        acceptance_rate=_rate(accepted, valid),
        on_time_check_rate=_rate(checked_on_time, handled),
        closure_rate=_rate(closed, due),
        on_time_closure_rate=_rate(closed_on_time, due),
        rework_rate=_rate(rework, due),
        extension_rate=_rate(extended, due),
        mean_hours_to_close=sum(hours) / len(hours) if hours else None,
    )
