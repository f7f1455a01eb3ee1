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

Many at once
    ``compute_deadlines`` and ``three_times_overdue_at_many`` (and the calendar methods
    ``add_working_hours_many`` / ``add_working_days_many``) give, row by row, exactly what
    ``compute_deadline`` / ``three_times_overdue_at`` give — the same moments to the
    microsecond in the same time zone, the same years in ``assumed_weekdays`` and so the same
    warning — for a whole batch with numpy. Each moment is mapped to its working-time
    coordinate (the working time from the start of the day table to it: running working-day
    total × day length + the part of its own day worked), the amount is added and the
    coordinate is mapped back with a binary search; working days use the running count of
    working days directly. For bulk work such as an import.
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
import numpy as np
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext

__all__ = [
    "DEFAULT_HOURS",
    "DEFAULT_TZ",
    "Deadline",
    "Deadlines",
    "WorkingCalendar",
    "compute_deadline",
    "compute_deadlines",
    "deadlines_and_three_times",
    "extend",
    "is_3x_overdue",
    "three_times_overdue_at",
    "three_times_overdue_at_many",
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
_US_PER_DAY = 24 * _US_PER_HOUR
_ONE_US = dt.timedelta(microseconds=1)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# More working hours or days than fit before the year 9999 with any working periods; larger
# amounts are refused as the one-at-a-time functions refuse them, before any int64 overflow.
_MAX_HOURS = 1e8
_MAX_DAYS = 4_000_000
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

    __slots__ = ("_arrays", "cuma", "cumw", "codes", "lo", "year_hi", "year_lo")

    def __init__(self, year_lo: int, year_hi: int, codes: list[int]) -> None:
        self.year_lo, self.year_hi, self.codes = year_lo, year_hi, codes
        self.lo = dt.date(year_lo, 1, 1).toordinal()
        # cumw[i] / cuma[i]: working / assumed days among the first i days of the table.
        self.cumw = list(accumulate((c & _WORK for c in codes), initial=0))
        self.cuma = list(accumulate((c >> 1 for c in codes), initial=0))
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(1 for a working day else 0, cumw, cuma) as int64 arrays, made on first use."""
        arrays = self._arrays
        if arrays is None:  # two threads may both make them; either result is the same
            work = np.asarray(self.codes, dtype=np.int64) & _WORK
            arrays = (work, np.asarray(self.cumw, np.int64), np.asarray(self.cuma, np.int64))
            self._arrays = arrays
        return arrays


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

    # --- many at once (the same results as the methods above, row by row) -------------------

    def _local_many(self, values, name: str) -> np.ndarray:
        """Wall-clock times in the calendar's zone (as ``_local`` gives them) as microseconds
        since 1970-01-01 00:00 wall-clock time."""
        tz = self.tz
        base = dt.datetime(1970, 1, 1, tzinfo=tz)  # same tzinfo: differences are wall-clock
        local = []
        for value in values:
            if not isinstance(value, dt.datetime) or value.utcoffset() is None:
                _require_aware(value, name)
            local.append((value.astimezone(tz) - base) // _ONE_US)
        return np.array(local, dtype=np.int64)

    @staticmethod
    def _days_and_times(local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Date ordinals and microseconds since midnight of wall-clock times."""
        days = local // _US_PER_DAY
        return days + _EPOCH_ORDINAL, local - days * _US_PER_DAY

    def _table_many(self, ordinals: np.ndarray) -> _DayTable:
        first = dt.date.fromordinal(int(ordinals.min()))
        last = dt.date.fromordinal(int(ordinals.max()))
        return self._table_for(first, last)

    def _coordinates(self, table: _DayTable, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Working microseconds from the start of the table to time ``t`` of table day ``i``."""
        work, cumw, _ = table.arrays()
        worked = np.zeros(len(t), dtype=np.int64)
        for p_start, p_end in self._periods:
            worked += np.clip(t - p_start, 0, p_end - p_start)
        return cumw[i] * self._day_us + worked * work[i]

    def _moments(
        self, table: _DayTable, coordinates: np.ndarray, latest: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(table day, microseconds since midnight) of working-time coordinates: the earliest
        moment at that coordinate (the end of a period, not the start of the next one), or
        with ``latest`` the last one (where counting resumes: the start of the next period).
        The table must reach far enough."""
        _, cumw, _ = table.arrays()
        day_us = self._day_us
        # m: working days before the one the moment falls on; r: worked part of that day.
        m = np.where(latest, coordinates // day_us, (coordinates - 1) // day_us)
        r = coordinates - m * day_us
        j = np.searchsorted(cumw, m + 1, side="left") - 1
        lengths = np.array([b - a for a, b in self._periods], dtype=np.int64)
        ends = np.cumsum(lengths)
        begins = np.array([a for a, _ in self._periods], dtype=np.int64)
        k = np.where(
            latest, np.searchsorted(ends, r, side="right"), np.searchsorted(ends, r, side="left")
        )
        return j, begins[k] + r - (ends[k] - lengths[k])

    @staticmethod
    def _wall_us(table: _DayTable, j: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Time ``t`` of table days ``j`` as ``_local_many`` gives it (of ``_datetimes``)."""
        return (j + (table.lo - _EPOCH_ORDINAL)) * _US_PER_DAY + t

    def _datetimes(self, table: _DayTable, j: np.ndarray, t: np.ndarray) -> list[dt.datetime]:
        """Aware datetimes (the calendar's zone) at time ``t`` of table days ``j``, as ``_at``."""
        us = self._wall_us(table, j, t)
        base = dt.datetime(1970, 1, 1, tzinfo=self.tz)  # + timedelta: wall-clock, fold 0
        return [base + delta for delta in us.astype("timedelta64[us]").tolist()]

    def _assumed_many(self, table: _DayTable, i: np.ndarray, j: np.ndarray) -> list[tuple]:
        """``_assumed_years(table, i, j)`` of each row, as tuples (``()`` for most rows)."""
        _, _, cuma = table.arrays()
        years: list[tuple] = [()] * len(i)
        found: dict[tuple[int, int], tuple] = {}
        for row in np.flatnonzero(cuma[j + 1] > cuma[i]).tolist():
            key = (int(i[row]), int(j[row]))
            value = found.get(key)
            if value is None:
                value = found[key] = tuple(self._assumed_years(table, *key))
            years[row] = value
        return years

    def _hours_many(
        self, local: np.ndarray, remaining: np.ndarray
    ) -> tuple[_DayTable, np.ndarray, np.ndarray, np.ndarray]:
        """(table, start days, due days, due times) for working microseconds ``remaining``
        after wall-clock times ``local`` (as ``_add_hours``)."""
        ordinals, t = self._days_and_times(local)
        table = self._table_many(ordinals)
        day_us = self._day_us
        latest = remaining == 0  # nothing to count: where counting starts
        while True:
            i = ordinals - table.lo
            target = self._coordinates(table, i, t) + remaining
            needed = int(np.where(latest, target // day_us, (target - 1) // day_us).max()) + 1
            if table.cumw[-1] >= needed:
                break
            table = self._grown(table, needed - table.cumw[-1])
        j, due = self._moments(table, target, latest)
        return table, i, j, due

    def _days_many(
        self, local: np.ndarray, days: np.ndarray
    ) -> tuple[_DayTable, np.ndarray, np.ndarray]:
        """(table, start days, due days) for ``days`` working days after the dates of
        ``local`` (as ``_add_days``)."""
        ordinals, _ = self._days_and_times(local)
        table = self._table_many(ordinals)
        while True:
            i = ordinals - table.lo
            target = table.arrays()[1][i + 1] + days
            needed = int(target.max())
            if table.cumw[-1] >= needed:
                break
            table = self._grown(table, needed - table.cumw[-1])
        j = np.searchsorted(table.arrays()[1], target, side="left") - 1
        return table, i, j

    def add_working_hours_many(self, starts: Sequence[dt.datetime], hours) -> list[dt.datetime]:
        """``add_working_hours`` of each start; ``hours`` is one number or one per start."""
        return self._hours_deadlines(starts, hours, False)[0]

    def add_working_days_many(self, starts: Sequence[dt.datetime], days) -> list[dt.datetime]:
        """``add_working_days`` of each start; ``days`` is one number or one per start."""
        return self._days_deadlines(starts, days, False)[0]

    def _hours_deadlines(self, starts, hours, assumed: bool):
        return self._hours_local(self._local_many(starts, "start"), hours, assumed)[:2]

    def _days_deadlines(self, starts, days, assumed: bool):
        return self._days_local(self._local_many(starts, "start"), days, assumed)[:2]

    def _hours_local(self, local: np.ndarray, hours, assumed: bool):
        """(deadlines, assumed years, deadlines as ``_local_many`` gives them) of wall-clock
        starts ``local``."""
        if not len(local):
            return [], [], local
        remaining = _working_us(hours, len(local))
        table, i, j, t = self._hours_many(local, remaining)
        years = self._assumed_many(table, i, j) if assumed else []
        return self._datetimes(table, j, t), years, self._wall_us(table, j, t)

    def _days_local(self, local: np.ndarray, days, assumed: bool):
        """As ``_hours_local``, for working days."""
        if not len(local):
            return [], [], local
        table, i, j = self._days_many(local, _whole_days(days, len(local)))
        close = np.full(len(j), self._close, dtype=np.int64)
        years = self._assumed_many(table, i + 1, j) if assumed else []
        return self._datetimes(table, j, close), years, self._wall_us(table, j, close)


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


# --- many at once ----------------------------------------------------------------------------


def _per_row(values, n: int, name: str) -> list:
    """``values`` as a list of ``n`` (one value given for every row is repeated)."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{len(values)} {name} for {n} starts")
    return values


def _working_us(hours, n: int) -> np.ndarray:
    """Working hours (one or one per row) as whole microseconds, checked as ``_add_hours``
    checks them."""
    values = _per_row(hours, n, "amounts")
    try:
        floats = np.fromiter(map(float, values), dtype=float, count=n)
    except (TypeError, ValueError):
        for value in values:
            try:
                float(value)
            except (TypeError, ValueError):
                raise ValueError(f"working hours must be a number, got {value!r}") from None
        raise
    bad = ~(floats >= 0) | (floats == float("inf"))
    if bad.any():
        value = float(floats[np.flatnonzero(bad)[0]])
        raise ValueError(f"working hours must be a finite number >= 0, got {value!r}")
    if (floats > _MAX_HOURS).any():
        raise ValueError("the deadline would fall after the year 9999")
    return np.rint(floats * _US_PER_HOUR).astype(np.int64)


def _whole_days(days, n: int) -> np.ndarray:
    """Working days (one or one per row), checked as ``_add_days`` checks them."""
    checked = []
    for value in _per_row(days, n, "amounts"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"working days must be a whole number, got {value!r}")
        if value < 1:
            raise ValueError(f"working days must be >= 1, got {value}")
        if value > _MAX_DAYS:
            raise ValueError("the deadline would fall after the year 9999")
        checked.append(value)
    return np.array(checked, dtype=np.int64)


@dataclass(frozen=True)
class Deadlines:
    """The deadlines of a batch (``compute_deadlines``): row ``k`` is ``Deadline(due[k],
    list(assumed_weekdays[k]))``, each years tuple sorted (``()`` when fully covered)."""

    due: list[dt.datetime]
    assumed_weekdays: list[tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.due)

    def __getitem__(self, k: int) -> Deadline:
        return Deadline(due=self.due[k], assumed_weekdays=list(self.assumed_weekdays[k]))

    def warnings(self) -> list[str]:
        """``Deadline.warning()`` of every row ("" when fully covered)."""
        texts: dict[tuple[int, ...], str] = {(): ""}
        out = []
        for due, years in zip(self.due, self.assumed_weekdays, strict=True):
            text = texts.get(years)
            if text is None:
                text = texts[years] = Deadline(due, list(years)).warning()
            out.append(text)
        return out


def compute_deadlines(
    calendar: WorkingCalendar, starts: Sequence[dt.datetime], amounts, units
) -> Deadlines:
    """``compute_deadline`` of every start, in one go. ``amounts`` and ``units`` are one value
    for every start or one per start. Bad input raises the errors ``compute_deadline`` raises."""
    starts = list(starts)
    return _deadlines_local(calendar, calendar._local_many(starts, "start"), amounts, units)[0]


def deadlines_and_three_times(
    calendar: WorkingCalendar, starts: Sequence[dt.datetime], amounts, units
) -> tuple[Deadlines, list[dt.datetime]]:
    """``compute_deadlines`` and ``three_times_overdue_at_many`` of its deadlines, in one go
    (each start is put in the calendar's zone once: the bulk import's way)."""
    starts = list(starts)
    local = calendar._local_many(starts, "start")
    deadlines, due_local = _deadlines_local(calendar, local, amounts, units)
    return deadlines, _three_times_local(calendar, starts, local, due_local)


def _deadlines_local(
    calendar: WorkingCalendar, local: np.ndarray, amounts, units
) -> tuple[Deadlines, np.ndarray]:
    """``compute_deadlines`` of wall-clock starts ``local``, and the deadlines as
    ``_local_many`` gives them."""
    n = len(local)
    amounts = _per_row(amounts, n, "amounts")
    units = _per_row(units, n, "units")
    for unit in set(units):
        _check_unit(unit)
    due: list = [None] * n
    assumed: list = [()] * n
    due_local = np.zeros(n, dtype=np.int64)
    for unit, deadlines in (
        ("hours", calendar._hours_local),
        ("days", calendar._days_local),
    ):
        rows = [k for k, u in enumerate(units) if u == unit]
        if len(rows) == n:
            moments, years, wall = deadlines(local, amounts, True)
            return Deadlines(moments, years), wall
        if rows:
            moments, years, wall = deadlines(local[rows], [amounts[k] for k in rows], True)
            due_local[rows] = wall
            for k, moment, row_years in zip(rows, moments, years, strict=True):
                due[k], assumed[k] = moment, row_years
    return Deadlines(due=due, assumed_weekdays=assumed), due_local


def three_times_overdue_at_many(
    starts: Sequence[dt.datetime],
    deadlines: Sequence[dt.datetime] | Deadlines,
    calendar: WorkingCalendar,
) -> list[dt.datetime]:
    """``three_times_overdue_at`` of every (start, deadline) pair, in one go."""
    starts = list(starts)
    deadlines = list(deadlines.due if isinstance(deadlines, Deadlines) else deadlines)
    if len(deadlines) != len(starts):
        raise ValueError(f"{len(deadlines)} deadlines for {len(starts)} starts")
    local = calendar._local_many(starts, "start")
    return _three_times_local(calendar, starts, local, calendar._local_many(deadlines, "deadline"))


def _three_times_local(
    calendar: WorkingCalendar, starts: list, local: np.ndarray, due_local: np.ndarray
) -> list[dt.datetime]:
    """``three_times_overdue_at_many`` of starts and deadlines as ``_local_many`` gives them
    (``local``, ``due_local``); ``starts`` are the starts themselves."""
    if not starts:
        return []
    start_days, start_times = calendar._days_and_times(local)
    due_days, due_times = calendar._days_and_times(due_local)
    table = calendar._table_many(np.concatenate([start_days, due_days]))
    allowed = calendar._coordinates(table, due_days - table.lo, due_times) - calendar._coordinates(
        table, start_days - table.lo, start_times
    )
    result = list(starts)  # no working time allowed: the start itself
    rows = np.flatnonzero(allowed > 0)
    if len(rows):
        three = 3 * allowed[rows]
        if int(three.max()) < 2**53:  # exact as a float, so the quotient rounds as int / int
            remaining = np.rint(three.astype(float) / _US_PER_HOUR * _US_PER_HOUR)
        else:
            remaining = [round(x / _US_PER_HOUR * _US_PER_HOUR) for x in three.tolist()]
        table, _, j, t = calendar._hours_many(local[rows], np.asarray(remaining, dtype=np.int64))
        for k, moment in zip(rows.tolist(), calendar._datetimes(table, j, t), strict=True):
            result[k] = moment
    return result
