"""Indicators (DOMAIN.md §5) per unit — any level, everything below it counts — and period.

The population is the incidents reported in [start, end) that belong to the unit's subtree.
An incident belongs to its micro-grid or, when it has none, to its grid, community or street
(the deepest one it has), as in incidents.selectors.incidents_for. "Now" below is the
earlier of `end` and the present moment: a deadline still ahead has not been missed yet.
From the incidents' timelines:

- valid reports: reports neither voided (作废) nor closed as duplicates (重复上报);
  valid-report rate = valid ÷ reports
- accepted (立案): incidents with an "accept" step; acceptance rate = accepted ÷ valid
- handled: incidents with a "handle" or "self_resolve" step
- due to close = handled + open incidents not handled whose deadline passed before now
- closure rate = closed ÷ due to close; on-time closure = closed by the deadline ÷ due
- on-time check rate = handled incidents checked ("check" or "rework") by their deadline ÷
  handled incidents due for a check (checked, or deadline passed before now; not those
  self-resolved on the spot, which get no check); the check limit is folded into the
  incident's deadline here
- rework rate = incidents due to close with a "rework" step ÷ due; extension rate =
  incidents due to close with an approved extension ÷ due (a numerator is always part of
  its denominator)
- self-resolved count; mean time to close in hours (report → close, closed incidents)

A rate with a zero denominator is None (shown as "—"), never 0 or 100%.

`indicators_of_units` computes a table of units (a unit and its children) in one query
whatever the number of units; `indicators` is the one-unit case.
"""

import datetime
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import reduce
from operator import or_

from django.db.models import Count, Min, Q
from django.utils import timezone

from incidents.models import Incident
from incidents.workflow import FINAL_STATES, State

# The unit fields of an incident, deepest first: the first one set is where it belongs.
PATH_FIELDS = ("unit__path", "grid__path", "community__path", "street__path")
# Units whose subtrees one query reads (see indicators_of_units).
SUBTREES_PER_QUERY = 100


@dataclass
class Indicators:
    reports: int
    valid: int
    accepted: int
    handled: int
    due_to_close: int
    closed: int
    closed_on_time: int
    due_to_check: int
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


def _in_subtree(path: str) -> Q:
    """Incidents whose deepest unit lies at or below the unit with this path."""
    return (
        Q(unit__path__startswith=path)
        | Q(unit__isnull=True, grid__path__startswith=path)
        | Q(unit__isnull=True, grid__isnull=True, community__path__startswith=path)
        | Q(
            unit__isnull=True,
            grid__isnull=True,
            community__isnull=True,
            street__path__startswith=path,
        )
    )


def _prefixes(path: str) -> list[str]:
    """The paths of a unit and its ancestors: "/a/b/c/" → ["/a/", "/a/b/", "/a/b/c/"]."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def _population(
    condition: Q | None, start: datetime.datetime, end: datetime.datetime
) -> list[dict]:
    """The incidents reported in [start, end) matching `condition`, one row each with what
    their timelines say (how many steps of each kind, the first check), in one query."""
    incidents = Incident.objects.filter(reported_at__gte=start, reported_at__lt=end)
    if condition is not None:
        incidents = incidents.filter(condition)

    def steps(*actions) -> Count:
        return Count("timeline", filter=Q(timeline__action__in=actions))

    fields = ("id", "state", "deadline", "reported_at", "closed_at", *PATH_FIELDS)
    return list(
        incidents.order_by()
        .values(*fields)
        .annotate(
            accepted=steps("accept"),
            handled=steps("handle", "self_resolve"),
            self_resolved=steps("self_resolve"),
            reworked=steps("rework"),
            extended=steps("approve_extension"),
            first_check=Min("timeline__at", filter=Q(timeline__action__in=("check", "rework"))),
        )
    )


def _compute(rows: list[dict], now: datetime.datetime) -> Indicators:
    def missed(row) -> bool:
        return row["deadline"] is not None and row["deadline"] < now

    reports = len(rows)
    valid = sum(1 for r in rows if r["state"] not in (State.VOID, State.DUPLICATE))
    accepted = sum(1 for r in rows if r["accepted"])
    handled_rows = [r for r in rows if r["handled"]]
    handled_ids = {r["id"] for r in handled_rows}
    overdue_unhandled = [
        r
        for r in rows
        if r["id"] not in handled_ids and r["state"] not in FINAL_STATES and missed(r)
    ]
    due_rows = handled_rows + overdue_unhandled
    due = len(due_rows)
    closed_rows = [r for r in rows if r["state"] == State.CLOSED and r["closed_at"]]
    closed = len(closed_rows)
    closed_on_time = sum(
        1 for r in closed_rows if r["deadline"] and r["closed_at"] <= r["deadline"]
    )
    # Self-resolved incidents (自行处置) are dealt with on the spot: no check is due for them.
    check_rows = [
        r
        for r in handled_rows
        if r["handled"] > r["self_resolved"] and (r["first_check"] is not None or missed(r))
    ]
    checked_on_time = sum(
        1
        for r in check_rows
        if r["deadline"] is not None
        and r["first_check"] is not None
        and r["first_check"] <= r["deadline"]
    )
    rework = sum(1 for r in due_rows if r["reworked"])
    extended = sum(1 for r in due_rows if r["extended"])
    self_resolved = sum(1 for r in rows if r["self_resolved"])
    hours = [(r["closed_at"] - r["reported_at"]).total_seconds() / 3600 for r in closed_rows]
    return Indicators(
        reports=reports,
        valid=valid,
        accepted=accepted,
        handled=len(handled_rows),
        due_to_close=due,
        closed=closed,
        closed_on_time=closed_on_time,
        due_to_check=len(check_rows),
        checked_on_time=checked_on_time,
        rework=rework,
        extended=extended,
        self_resolved=self_resolved,
        valid_report_rate=_rate(valid, reports),
        acceptance_rate=_rate(accepted, valid),
        on_time_check_rate=_rate(checked_on_time, len(check_rows)),
        closure_rate=_rate(closed, due),
        on_time_closure_rate=_rate(closed_on_time, due),
        rework_rate=_rate(rework, due),
        extension_rate=_rate(extended, due),
        mean_hours_to_close=sum(hours) / len(hours) if hours else None,
    )


def _now(end: datetime.datetime, now: datetime.datetime | None) -> datetime.datetime:
    return min(end, now or timezone.now())


def indicators(
    unit,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    now: datetime.datetime | None = None,
) -> Indicators:
    """The indicators of `unit` (a grids Unit; None for everything) for [start, end).

    `now` (default: the present moment) decides which deadlines have passed.
    """
    if unit is None:
        return _compute(_population(None, start, end), _now(end, now))
    return indicators_of_units([unit], start, end, now=now)[unit.pk]


def indicators_of_units(
    units: Iterable,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    now: datetime.datetime | None = None,
) -> dict[int, Indicators]:
    """The indicators of each unit in `units` for [start, end), by unit id.

    One query per SUBTREES_PER_QUERY units (the incidents below any of them, with their
    timeline steps; SQLite refuses an expression tree deeper than 1,000, and each unit adds
    four terms); each incident is then counted for every listed unit on its path.
    """
    units = list(units)
    if not units:
        return {}
    ids_by_path: dict[str, list[int]] = {}
    for unit in units:
        ids_by_path.setdefault(unit.path, []).append(unit.pk)
    # A unit whose ancestor is listed adds nothing to the query.
    tops = [p for p in ids_by_path if not any(a in ids_by_path for a in _prefixes(p)[:-1])]
    rows = []
    for first in range(0, len(tops), SUBTREES_PER_QUERY):
        chunk = tops[first : first + SUBTREES_PER_QUERY]
        rows += _population(reduce(or_, (_in_subtree(p) for p in chunk)), start, end)
    buckets: dict[int, list[dict]] = {unit.pk: [] for unit in units}
    for row in rows:
        path = next((row[f] for f in PATH_FIELDS if row[f]), None)
        if path is None:
            continue
        for prefix in _prefixes(path):
            for pk in ids_by_path.get(prefix, ()):
                buckets[pk].append(row)
    at = _now(end, now)
    return {pk: _compute(bucket, at) for pk, bucket in buckets.items()}
