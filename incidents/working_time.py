"""Working-time deadlines (DOMAIN.md §3–§4): limits count working time, not wall-clock time.

Rules
-----
Working day
    1. An admin override for the date wins over everything (``overrides``: date → True for a
       working day, False for a day off). It is for an official schedule that is published before
       the ``chinese-calendar`` package is updated.
    2. Otherwise the ``chinese-calendar`` package decides: official public holidays are days off
       and the official make-up workdays (调休, e.g. Saturday 2026-10-10) are working days. No
       holiday list is written by hand here.
    3. For years the package does not cover (1.11.0 covers 2004–2026) Monday–Friday are assumed
       to be working days. Every computation that relied on this assumption says so: the
       ``Deadline`` result lists the years in ``assumed_weekdays`` so the UI can warn "holiday
       calendar for 2027 not published yet; weekdays assumed". Years named in
       ``complete_years`` (the admin entered the whole official schedule as overrides) are not
       reported. Updating the package makes the fallback disappear without code changes.
       Caveat: a State Council notice occasionally moves days at the very end of the previous
       year (the 2019 New Year notice made Saturday 2018-12-29 a workday); such days are only
       right once the package or an override has them.

Working hours
    Working periods are the same on every working day, by default 08:30–12:00 and 13:30–17:30
    (7.5 h), configurable with the setting ``WEIGE_WORKING_HOURS = "08:30-12:00,13:30-17:30"``.
    Times are wall-clock times in the calendar's time zone (Asia/Shanghai); inputs in any other
    time zone are converted first, results are returned in the calendar's time zone. Naive
    datetimes are refused with ``ValueError``.

Deadline in working hours (``add_working_hours``)
    Counting starts at the start if that is inside a working period, otherwise at the beginning
    of the next working period (a report at 12:30 starts counting at 13:30, one at 18:00 or on
    a Sunday at 08:30 of the next working day). Lunch breaks, evenings and days off are
    skipped. A deadline that is used up exactly at the end of a period is that end (11:00 + 1 h
    is 12:00, not 13:30).

Deadline in working days (``add_working_days``)
    The start day itself is not counted (as in 民法典 art. 201: counting begins the next day);
    the deadline is the close of business (end of the last working period, 17:30) of the N-th
    working day after the calendar date of the start, whatever the time of day of the start.
    So a report at 16:00 on Friday 2026-11-27 with 1 working day is due on Monday 2026-11-30 at
    17:30 — and so is a report at 20:00 that Friday or on Saturday 2026-11-28. A report on
    Monday 2026-11-30 at 08:00 with 1 working day is due on Tuesday 2026-12-01 at 17:30.

Extension (``extend``)
    An approved extension moves the deadline by the extra working time counted from the
    current deadline (not from the approval time), with the same rules.

Overdue
    ``overdue(deadline, now)`` is ``now > deadline``. The overdue factor is the working time
    elapsed since the start divided by the working time allowed (start → deadline), both
    measured with ``working_hours_between``; "3× overdue" (Signalen's factor 3) is
    ``overdue_factor >= 3``, i.e. three times the allowed working time has passed;
    ``three_times_overdue_at`` is the moment that starts.

Performance
    Each calendar instance lazily builds a table of day codes for whole years with running
    totals of working days, so a deadline or an elapsed-time figure costs a binary search,
    not a walk over the days (the package is asked once per date per process). Reuse one
    ``WorkingCalendar`` for bulk work such as an import: about 100 000 ``compute_deadline``
    calls per second on the 2-core development machine. Instances are safe to share between
    threads (the table is replaced, never modified); ``overrides`` is read-only after
    construction — build a new calendar when an admin changes them.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext

__all__ = [
    "DEFAULT_HOURS",
    "DEFAULT_TZ",
    "Deadline",
    "WorkingCalendar",
    "compute_deadline",
    "extend",
    "is_3x_overdue",
    "three_times_overdue_at",
    "overdue",
    "overdue_factor",
    "parse_working_hours",
]

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_HOURS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(8, 30), dt.time(12, 0)),
    (dt.time(13, 30), dt.time(17, 30)),
)
UNITS = ("hours", "days")
Unit = Literal["hours", "days"]

_US_PER_HOUR = 3_600_000_000
_PERIOD_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

# Day codes in the day table: bit 0 = working day, bit 1 = Mon–Fri was assumed.
_WORK = 1
_ASSUMED = 2


@functools.lru_cache(maxsize=65536)
def _package_workday(day: dt.date) -> bool | None:
    """The package's answer for a date, or None when it has no data for that year."""
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None


def parse_working_hours(value: str | Sequence) -> tuple[tuple[dt.time, dt.time], ...]:
    """Parse ``"08:30-12:00,13:30-17:30"`` (or a sequence of (start, end) pairs of ``time`` or
    ``"HH:MM"`` strings) into sorted, non-overlapping working periods.

    Raises ValueError with the offending part on bad input.
    """
    if isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
        pairs = []
        for part in parts:
            m = _PERIOD_RE.match(part)
            if not m:
                raise ValueError(
                    f"working period {part.strip()!r} is not of the form HH:MM-HH:MM "
                    f"(whole value: {value!r})"
                )
            pairs.append((_time(m[1], m[2], part), _time(m[3], m[4], part)))
    else:
        pairs = [(_as_time(a), _as_time(b)) for a, b in value]
    if not pairs:
        raise ValueError("at least one working period is needed, e.g. '08:30-12:00,13:30-17:30'")
    pairs.sort()
    for start, end in pairs:
        if not start < end:
            raise ValueError(f"working period {start:%H:%M}-{end:%H:%M} ends before it starts")
    for (_, end1), (start2, end2) in zip(pairs, pairs[1:], strict=False):
        if start2 < end1:
            raise ValueError(
                f"working periods overlap: ...-{end1:%H:%M} and {start2:%H:%M}-{end2:%H:%M}"
            )
    return tuple(pairs)


def _time(hh: str, mm: str, part: str) -> dt.time:
    try:
        return dt.time(int(hh), int(mm))
    except ValueError:
        raise ValueError(f"working period {part.strip()!r} has an invalid time") from None


def _as_time(value) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,2}:\d{2}\s*", value):
        hh, mm = value.strip().split(":")
        return _time(hh, mm, value)
    raise ValueError(f"working period bound {value!r} is not a time or 'HH:MM'")


def _us_of_day(t: dt.time | dt.datetime) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def _require_aware(value, name: str) -> None:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got naive {value.isoformat()}; "
            "use django.utils.timezone.now() or attach a tzinfo"
        )


@dataclass(frozen=True)
class Deadline:
    """A computed deadline.

    ``assumed_weekdays`` lists the years (sorted) whose holiday calendar was not available, so
    Monday–Friday were assumed to be working days for them; empty when fully covered.
    """

    due: dt.datetime
    assumed_weekdays: list[int] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        """True when every day used came from the official calendar or an override."""
        return not self.assumed_weekdays

    def warning(self) -> str:
        """A message for the UI, or "" when the deadline is fully covered."""
        if not self.assumed_weekdays:
            return ""
        return gettext(
            "Holiday calendar for %(years)s not published yet; weekdays (Monday–Friday) assumed."
        ) % {"years": ", ".join(str(y) for y in self.assumed_weekdays)}


class _DayTable:
    """Codes for every day of the whole years ``year_lo..year_hi`` with running totals; never
    modified once built (a wider table replaces it), so readers need no lock."""

    __slots__ = ("cuma", "cumw", "codes", "lo", "year_hi", "year_lo")

    def __init__(self, year_lo: int, year_hi: int, codes: list[int]) -> None:
        self.year_lo, self.year_hi, self.codes = year_lo, year_hi, codes
        self.lo = dt.date(year_lo, 1, 1).toordinal()
        # cumw[i] / cuma[i]: working / assumed days among the first i days of the table.
        self.cumw = list(accumulate((c & _WORK for c in codes), initial=0))
        self.cuma = list(accumulate((c >> 1 for c in codes), initial=0))


class WorkingCalendar:
    """Working days (official Chinese calendar + overrides) and working periods per day."""

    def __init__(
        self,
        hours: Sequence = DEFAULT_HOURS,
        tz: dt.tzinfo = DEFAULT_TZ,
        overrides: Mapping[dt.date, bool] | None = None,
        complete_years: Iterable[int] = (),
    ) -> None:
        self.hours = parse_working_hours(hours)
        self.tz = tz
        checked: dict[dt.date, bool] = {}
        for day, working in (overrides or {}).items():
            if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
                raise TypeError(f"override keys must be dates, got {day!r}")
            checked[day] = bool(working)
        # Read-only: the day table below caches decisions made from them.
        self.overrides: Mapping[dt.date, bool] = MappingProxyType(checked)
        self.complete_years = frozenset(int(y) for y in complete_years)
        self._periods = tuple((_us_of_day(a), _us_of_day(b)) for a, b in self.hours)
        self._day_us = sum(b - a for a, b in self._periods)
        self._close = self._periods[-1][1]
        self._table: _DayTable | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, **kwargs) -> WorkingCalendar:
        """A calendar with the working periods of ``settings.WEIGE_WORKING_HOURS`` (default
        08:30-12:00,13:30-17:30). Keyword arguments (tz, overrides, complete_years) are passed
        through."""
        from django.conf import settings

        value = getattr(settings, "WEIGE_WORKING_HOURS", None)
        if value is None:
            hours = DEFAULT_HOURS
        else:
            try:
                hours = parse_working_hours(value)
            except (ValueError, TypeError) as exc:
                raise ImproperlyConfigured(f"WEIGE_WORKING_HOURS: {exc}") from exc
        if kwargs:
            return cls(hours=hours, **kwargs)
        # Shared: its day table is built once per process, not once per incident.
        return _shared_calendar(cls, hours)

    def __repr__(self) -> str:
        periods = ",".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in self.hours)
        return f"<WorkingCalendar {periods} {self.tz} overrides={len(self.overrides)}>"

    @property
    def hours_per_day(self) -> float:
        return self._day_us / _US_PER_HOUR

    # --- days --------------------------------------------------------------------------------

    def _decide(self, day: dt.date) -> int:
        working = self.overrides.get(day)
        if working is not None:
            return _WORK if working else 0
        working = _package_workday(day)
        if working is not None:
            return _WORK if working else 0
        code = _WORK if day.weekday() < 5 else 0
        if day.year not in self.complete_years:
            code |= _ASSUMED
        return code

    def _year_codes(self, year_lo: int, year_hi: int) -> list[int]:
        first = dt.date(year_lo, 1, 1).toordinal()
        last = dt.date(year_hi, 12, 31).toordinal()
        return [self._decide(dt.date.fromordinal(o)) for o in range(first, last + 1)]

    def _covering(self, year_lo: int, year_hi: int) -> _DayTable:
        """A day table that covers the years ``year_lo..year_hi`` (widened when needed)."""
        table = self._table
        if table is not None and table.year_lo <= year_lo and year_hi <= table.year_hi:
            return table
        with self._lock:
            table = self._table
            if table is None:
                codes = self._year_codes(year_lo, year_hi)
                table = _DayTable(year_lo, year_hi, codes)
            else:
                lo, hi = min(year_lo, table.year_lo), max(year_hi, table.year_hi)
                if lo == table.year_lo and hi == table.year_hi:
                    return table
                codes = self._year_codes(lo, table.year_lo - 1) if lo < table.year_lo else []
                codes += table.codes
                if hi > table.year_hi:
                    codes += self._year_codes(table.year_hi + 1, hi)
                table = _DayTable(lo, hi, codes)
            self._table = table
            return table

    def _table_for(self, first: dt.date, last: dt.date) -> _DayTable:
        table = self._table
        if table is not None and table.year_lo <= first.year and last.year <= table.year_hi:
            return table
        return self._covering(first.year, last.year)

    def _grown(self, table: _DayTable, missing_workdays: int) -> _DayTable:
        """A table reaching far enough to hold ``missing_workdays`` more working days."""
        hi = table.year_hi + missing_workdays // 200 + 1
        if hi > dt.MAXYEAR:
            raise ValueError("the deadline would fall after the year 9999")
        return self._covering(table.year_lo, hi)

    def _assumed_years(self, table: _DayTable, i: int, j: int) -> list[int]:
        """Years with assumed days among table days ``i..j`` (inclusive)."""
        cuma = table.cuma
        if cuma[j + 1] == cuma[i]:
            return []
        lo = table.lo
        first, last = dt.date.fromordinal(lo + i).year, dt.date.fromordinal(lo + j).year
        years = []
        for year in range(first, last + 1):
            a = max(i, dt.date(year, 1, 1).toordinal() - lo)
            b = min(j, dt.date(year, 12, 31).toordinal() - lo)
            if cuma[b + 1] > cuma[a]:
                years.append(year)
        return years

    def _day_code(self, day) -> int:
        if isinstance(day, dt.datetime):
            _require_aware(day, "day")
            day = day.astimezone(self.tz).date()
        table = self._table_for(day, day)
        return table.codes[day.toordinal() - table.lo]

    def is_workday(self, day: dt.date) -> bool:
        """Override, else the official calendar, else Monday–Friday (see ``covered``)."""
        return bool(self._day_code(day) & _WORK)

    def covered(self, day: dt.date) -> bool:
        """False when ``is_workday(day)`` is only the Monday–Friday assumption."""
        return not self._day_code(day) & _ASSUMED

    # --- arithmetic --------------------------------------------------------------------------

    def _local(self, value: dt.datetime, name: str) -> dt.datetime:
        _require_aware(value, name)
        return value.astimezone(self.tz)

    def _at(self, table: _DayTable, i: int, us: int) -> dt.datetime:
        day = dt.date.fromordinal(table.lo + i)
        seconds, micro = divmod(us, 1_000_000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        return dt.datetime(
            day.year, day.month, day.day, hour, minute, second, micro, tzinfo=self.tz
        )

    def _nth_workday_after(self, table: _DayTable, i: int, n: int) -> tuple[_DayTable, int]:
        """(table, index) of the ``n``-th working day after table day ``i`` (n >= 1)."""
        target = table.cumw[i + 1] + n
        while table.cumw[-1] < target:
            table = self._grown(table, target - table.cumw[-1])
        return table, bisect_left(table.cumw, target) - 1

    def add_working_hours(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment when ``hours`` working hours after ``start`` have passed."""
        return self._add_hours(start, hours, None)

    def _add_hours(self, start: dt.datetime, hours: float, assumed: set[int] | None):
        local = self._local(start, "start")
        try:
            hours = float(hours)
        except (TypeError, ValueError):
            raise ValueError(f"working hours must be a number, got {hours!r}") from None
        if not hours >= 0 or hours == float("inf"):
            raise ValueError(f"working hours must be a finite number >= 0, got {hours!r}")
        remaining = round(hours * _US_PER_HOUR)
        day = local.date()
        table = self._table_for(day, day)
        i = j = day.toordinal() - table.lo
        t = _us_of_day(local)
        end = None
        if table.codes[i] & _WORK:  # the rest of the start day
            for p_start, p_end in self._periods:
                if t < p_end:
                    begin = p_start if t < p_start else t
                    available = p_end - begin
                    if remaining <= available:
                        end = begin + remaining
                        break
                    remaining -= available
        if end is None:  # skip whole working days, then finish within the last one
            whole = (remaining - 1) // self._day_us if remaining > 0 else 0
            table, j = self._nth_workday_after(table, i, whole + 1)
            remaining -= whole * self._day_us
            for p_start, p_end in self._periods:
                available = p_end - p_start
                if remaining <= available:
                    end = p_start + remaining
                    break
                remaining -= available
        if assumed is not None:
            assumed.update(self._assumed_years(table, i, j))
        return self._at(table, j, end)

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """Close of business of the ``days``-th working day after the start's date (the start
        day is not counted, whatever the time). Friday 16:00 + 1 → Monday 17:30."""
        return self._add_days(start, days, None)

    def _add_days(self, start: dt.datetime, days: int, assumed: set[int] | None):
        local = self._local(start, "start")
        if isinstance(days, bool) or not isinstance(days, int):
            if isinstance(days, float) and days.is_integer():
                days = int(days)
            else:
                raise ValueError(f"working days must be a whole number, got {days!r}")
        if days < 1:
            raise ValueError(f"working days must be >= 1, got {days}")
        day = local.date()
        table = self._table_for(day, day)
        i = day.toordinal() - table.lo
        table, j = self._nth_workday_after(table, i, days)
        if assumed is not None and i + 1 <= j:
            assumed.update(self._assumed_years(table, i + 1, j))
        return self._at(table, j, self._close)

    def _worked_us(self, table: _DayTable, i: int, t0: int, t1: int) -> int:
        if not table.codes[i] & _WORK:
            return 0
        total = 0
        for p_start, p_end in self._periods:
            begin = p_start if p_start > t0 else t0
            end = p_end if p_end < t1 else t1
            if end > begin:
                total += end - begin
        return total

    def working_hours_between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Working hours from ``a`` to ``b`` (negative if ``b`` is before ``a``)."""
        return self._between_us(a, b) / _US_PER_HOUR

    def _between_us(self, a: dt.datetime, b: dt.datetime) -> int:
        la, lb = self._local(a, "a"), self._local(b, "b")
        if lb < la:
            return -self._between_us(b, a)
        da, db = la.date(), lb.date()
        table = self._table_for(da, db)
        ia, ib = da.toordinal() - table.lo, db.toordinal() - table.lo
        ta, tb = _us_of_day(la), _us_of_day(lb)
        if ia == ib:
            return self._worked_us(table, ia, ta, tb)
        return (
            self._worked_us(table, ia, ta, 24 * _US_PER_HOUR)
            + self._day_us * (table.cumw[ib] - table.cumw[ia + 1])
            + self._worked_us(table, ib, 0, tb)
        )


# --- deadlines -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _shared_calendar(cls, hours) -> WorkingCalendar:
    return cls(hours=hours)


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")


def compute_deadline(
    calendar: WorkingCalendar, start: dt.datetime, amount: float, unit: Unit
) -> Deadline:
    """The deadline ``amount`` working hours or working days after ``start``."""
    _check_unit(unit)
    assumed: set[int] = set()
    if unit == "hours":
        due = calendar._add_hours(start, amount, assumed)
    else:
        due = calendar._add_days(start, amount, assumed)
    return Deadline(due=due, assumed_weekdays=sorted(assumed))


def extend(
    deadline: dt.datetime | Deadline, amount: float, unit: Unit, calendar: WorkingCalendar
) -> Deadline:
    """Move a deadline by ``amount`` working hours/days counted from the current deadline.

    Given a ``Deadline``, the years it already assumed are kept in the result.
    """
    previous: list[int] = []
    if isinstance(deadline, Deadline):
        previous, deadline = deadline.assumed_weekdays, deadline.due
    result = compute_deadline(calendar, deadline, amount, unit)
    if previous:
        years = sorted(set(previous) | set(result.assumed_weekdays))
        result = Deadline(due=result.due, assumed_weekdays=years)
    return result


def overdue(deadline: dt.datetime, now: dt.datetime) -> bool:
    """True once ``now`` is past the deadline (at the deadline itself it is not overdue)."""
    _require_aware(deadline, "deadline")
    _require_aware(now, "now")
    return now > deadline


def _elapsed_allowed(start, deadline, now, calendar: WorkingCalendar) -> tuple[int, int]:
    _require_aware(start, "start")
    _require_aware(deadline, "deadline")
    _require_aware(now, "now")
    return calendar._between_us(start, now), calendar._between_us(start, deadline)


def overdue_factor(
    start: dt.datetime, deadline: dt.datetime, now: dt.datetime, calendar: WorkingCalendar
) -> float:
    """Working time elapsed since ``start`` ÷ working time allowed (``start`` → ``deadline``).

    0.0 when no working time has elapsed; ``inf`` when some has but none was allowed.
    """
    elapsed, allowed = _elapsed_allowed(start, deadline, now, calendar)
    if elapsed <= 0:
        return 0.0
    if allowed <= 0:
        return float("inf")
    return elapsed / allowed


def is_3x_overdue(
    start: dt.datetime, deadline: dt.datetime, now: dt.datetime, calendar: WorkingCalendar
) -> bool:
    """Signalen's "3× overdue": ``overdue_factor >= 3``, i.e. three times the allowed working
    time has elapsed (compared exactly, in whole microseconds)."""
    elapsed, allowed = _elapsed_allowed(start, deadline, now, calendar)
    return elapsed > 0 and elapsed >= 3 * allowed


def three_times_overdue_at(
    start: dt.datetime, deadline: dt.datetime, calendar: WorkingCalendar
) -> dt.datetime:
    """The moment from which ``is_3x_overdue`` holds: three times the working time allowed
    (``start`` → ``deadline``) after ``start``. Stored on incidents so that "3× overdue" is a
    plain comparison in a query."""
    _require_aware(start, "start")
    _require_aware(deadline, "deadline")
    allowed = calendar._between_us(start, deadline)
    if allowed <= 0:
        return start
    return calendar.add_working_hours(start, 3 * allowed / _US_PER_HOUR)
