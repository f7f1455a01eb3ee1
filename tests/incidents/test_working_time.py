"""Working-time deadlines. Every expected value is computed by hand in the comments.

Default working periods 08:30–12:00 (3.5 h) and 13:30–17:30 (4 h): 7.5 h per working day.

The 2026 dates follow 国务院办公厅关于2026年部分节假日安排的通知 (published November 2025), as
encoded in chinese-calendar 1.11.0:
- 元旦 Jan 1–3 off, Sunday Jan 4 worked;
- 春节 Feb 15 (Sun) – Feb 23 (Mon) off, Saturdays Feb 14 and Feb 28 worked;
- 中秋 Sep 25 (Fri) – Sep 27 (Sun) off;
- 国庆 Oct 1 (Thu) – Oct 7 (Wed) off, Sunday Sep 20 and Saturday Oct 10 worked.
(So Thursday Oct 8 is a normal working day and Sunday Sep 27 is a Mid-Autumn day off, not a
make-up workday.)
"""

import datetime as dt
import random
from datetime import date, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from incidents.working_time import (
    Deadline,
    Deadlines,
    WorkingCalendar,
    compute_deadline,
    compute_deadlines,
    deadlines_and_three_times,
    extend,
    is_3x_overdue,
    overdue,
    overdue_factor,
    parse_working_hours,
    three_times_overdue_at,
    three_times_overdue_at_many,
)

SH = ZoneInfo("Asia/Shanghai")
UTC = dt.UTC


def at(y, mo, d, h=0, mi=0, tz=SH):
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz)


@pytest.fixture
def cal():
    return WorkingCalendar()


# --- working days from the official calendar ------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 24), True),  # ordinary Tuesday
        (date(2026, 11, 28), False),  # ordinary Saturday
        (date(2026, 1, 4), True),  # Sunday, make-up workday for New Year
        (date(2026, 2, 14), True),  # Saturday, make-up workday for Spring Festival
        (date(2026, 2, 16), False),  # Monday, Spring Festival
        (date(2026, 2, 23), False),  # Monday, last Spring Festival day
        (date(2026, 2, 24), True),
        (date(2026, 2, 28), True),  # Saturday, make-up workday for Spring Festival
        (date(2026, 9, 20), True),  # Sunday, make-up workday for National Day
        (date(2026, 9, 25), False),  # Friday, Mid-Autumn
        (date(2026, 9, 27), False),  # Sunday, Mid-Autumn (not a make-up day)
        (date(2026, 10, 1), False),
        (date(2026, 10, 7), False),  # Wednesday, last National Day holiday
        (date(2026, 10, 8), True),  # Thursday, back to work
        (date(2026, 10, 10), True),  # Saturday, make-up workday for National Day
        (date(2026, 10, 11), False),  # ordinary Sunday
    ],
)
def test_is_workday_follows_the_official_2026_schedule(cal, day, working):
    assert cal.is_workday(day) is working
    assert cal.covered(day)


def test_years_the_package_does_not_cover_fall_back_to_monday_to_friday(cal):
    assert cal.is_workday(date(2027, 1, 1)) is True  # a Friday; New Year not published yet
    assert cal.is_workday(date(2027, 1, 2)) is False  # Saturday
    assert not cal.covered(date(2027, 1, 1))
    assert not cal.covered(date(2027, 1, 2))


def test_override_wins_over_package_and_fallback():
    cal = WorkingCalendar(
        overrides={date(2027, 1, 1): False, date(2026, 10, 10): False, date(2026, 10, 1): True}
    )
    assert cal.is_workday(date(2027, 1, 1)) is False
    assert cal.covered(date(2027, 1, 1))  # decided by an admin, not assumed
    assert cal.is_workday(date(2026, 10, 10)) is False
    assert cal.is_workday(date(2026, 10, 1)) is True


# --- working hours ---------------------------------------------------------------------------


def test_hours_within_a_morning(cal):
    # Tue 09:00 + 2 h = 11:00.
    assert cal.add_working_hours(at(2026, 11, 24, 9), 2) == at(2026, 11, 24, 11)


def test_hours_across_lunch(cal):
    # Tue 11:00: 1 h to 12:00, lunch, 1 h from 13:30 → 14:30.
    assert cal.add_working_hours(at(2026, 11, 24, 11), 2) == at(2026, 11, 24, 14, 30)


def test_hours_ending_exactly_at_the_lunch_break_end_at_noon(cal):
    assert cal.add_working_hours(at(2026, 11, 24, 11), 1) == at(2026, 11, 24, 12)


def test_fractional_hours(cal):
    # Tue 17:00 + 0.75 h: 0.5 h to 17:30, 0.25 h on Wed → 08:45.
    assert cal.add_working_hours(at(2026, 11, 24, 17), 0.75) == at(2026, 11, 25, 8, 45)


def test_hours_across_a_weekend(cal):
    # Fri 2026-11-27 16:00 + 6 h: 1.5 h Friday, 4.5 h on Mon 11-30: 3.5 h to 12:00 + 1 h → 14:30.
    assert cal.add_working_hours(at(2026, 11, 27, 16), 6) == at(2026, 11, 30, 14, 30)


def test_hours_spanning_several_whole_days(cal):
    # Mon 2026-11-23 08:30 + 20 h: Mon 7.5, Tue 7.5 (15), Wed 08:30 + 3.5 = 12:00 (18.5),
    # 1.5 h from 13:30 → Wed 15:00.
    assert cal.add_working_hours(at(2026, 11, 23, 8, 30), 20) == at(2026, 11, 25, 15)


def test_hours_across_the_2026_national_day_week(cal):
    # Wed 2026-09-30 16:00 + 5 h: 1.5 h on Sep 30, Oct 1–7 off, 3.5 h on Thu Oct 8 → 12:00.
    assert cal.add_working_hours(at(2026, 9, 30, 16), 5) == at(2026, 10, 8, 12)


def test_make_up_sunday_before_national_day_counts(cal):
    # Fri 2026-09-18 16:00 + 5 h: 1.5 h Friday, Sat 19 off, Sun 20 is a make-up workday:
    # 3.5 h → Sun Sep 20 12:00.
    assert cal.add_working_hours(at(2026, 9, 18, 16), 5) == at(2026, 9, 20, 12)


def test_make_up_saturday_counts_as_a_workday(cal):
    # Fri 2026-10-09 17:00 + 1 h: 0.5 h Friday, Sat Oct 10 is a make-up workday: 08:30 + 0.5.
    assert cal.add_working_hours(at(2026, 10, 9, 17), 1) == at(2026, 10, 10, 9)


def test_mid_autumn_long_weekend(cal):
    # Thu 2026-09-24 17:00 + 1 h: 0.5 h Thursday, Fri–Sun Sep 25–27 off, Mon Sep 28 09:00.
    assert cal.add_working_hours(at(2026, 9, 24, 17), 1) == at(2026, 9, 28, 9)


def test_spring_festival_2026(cal):
    # Fri 2026-02-13 16:00 + 10 h: 1.5 h Friday, Sat Feb 14 (make-up) 7.5 h → 9 h,
    # Feb 15–23 off, 1 h on Tue Feb 24 → 09:30.
    assert cal.add_working_hours(at(2026, 2, 13, 16), 10) == at(2026, 2, 24, 9, 30)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(2026, 11, 24, 7), at(2026, 11, 24, 9, 30)),  # before work: from 08:30
        (at(2026, 11, 24, 12, 30), at(2026, 11, 24, 14, 30)),  # lunch: from 13:30
        (at(2026, 11, 24, 12), at(2026, 11, 24, 14, 30)),  # exactly 12:00: from 13:30
        (at(2026, 11, 24, 18), at(2026, 11, 25, 9, 30)),  # evening: next morning
        (at(2026, 11, 24, 17, 30), at(2026, 11, 25, 9, 30)),  # exactly at closing time
        (at(2026, 11, 28, 10), at(2026, 11, 30, 9, 30)),  # Saturday: Monday morning
        (at(2026, 10, 3, 10), at(2026, 10, 8, 9, 30)),  # in the National Day week
    ],
)
def test_start_outside_working_hours_counts_from_the_next_period(cal, start, expected):
    assert cal.add_working_hours(start, 1) == expected


def test_aware_input_in_another_zone_is_converted(cal):
    # 01:00 UTC = 09:00 in Shanghai; + 2 h → 11:00 Shanghai, returned in Shanghai time.
    due = cal.add_working_hours(at(2026, 11, 24, 1, tz=UTC), 2)
    assert due == at(2026, 11, 24, 11)
    assert due.tzinfo == SH


# --- working days ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # Friday 16:00 with 1 working day: the start day is not counted → Monday close.
        (at(2026, 11, 27, 16), 1, at(2026, 11, 30, 17, 30)),
        # After hours on Friday or on Saturday: still Monday close.
        (at(2026, 11, 27, 20), 1, at(2026, 11, 30, 17, 30)),
        (at(2026, 11, 28, 10), 1, at(2026, 11, 30, 17, 30)),
        # Monday 08:00 (before opening) with 1 working day → Tuesday close.
        (at(2026, 11, 30, 8), 1, at(2026, 12, 1, 17, 30)),
        # 15 working days (illegal construction) from Mon 2026-11-02: Nov 3–6 (4), 9–13 (9),
        # 16–20 (14), Mon 23 (15).
        (at(2026, 11, 2, 10), 15, at(2026, 11, 23, 17, 30)),
        # Across National Day from Wed Sep 30: Oct 8 (1), Oct 9 (2), Sat Oct 10 make-up (3),
        # Mon Oct 12 (4), Tue Oct 13 (5).
        (at(2026, 9, 30, 16), 5, at(2026, 10, 13, 17, 30)),
        # Across Spring Festival from Fri Feb 13: Sat Feb 14 make-up (1), Tue Feb 24 (2).
        (at(2026, 2, 13, 10), 2, at(2026, 2, 24, 17, 30)),
    ],
)
def test_working_days_end_at_close_of_business_of_the_nth_working_day(cal, start, days, expected):
    assert cal.add_working_days(start, days) == expected
    assert compute_deadline(cal, start, days, "days") == Deadline(expected, [])


# --- years the package does not cover --------------------------------------------------------


def test_deadline_into_2027_assumes_weekdays_and_says_so(cal):
    # Thu 2026-12-31 16:00 + 1 working day: Fri 2027-01-01 is assumed a working day.
    result = compute_deadline(cal, at(2026, 12, 31, 16), 1, "days")
    assert result.due == at(2027, 1, 1, 17, 30)
    assert result.assumed_weekdays == [2027]
    assert not result.covered
    assert "2027" in result.warning()
    # Hours: 1.5 h on Dec 31, 3.5 h on Jan 1 → 12:00.
    result = compute_deadline(cal, at(2026, 12, 31, 16), 5, "hours")
    assert result == Deadline(at(2027, 1, 1, 12), [2027])


def test_deadline_inside_2026_reports_no_assumption(cal):
    # Thu 2026-12-31 17:00 + 0.5 h = 17:30 the same day; 2027 is never consulted.
    result = compute_deadline(cal, at(2026, 12, 31, 17), 0.5, "hours")
    assert result == Deadline(at(2026, 12, 31, 17, 30), [])
    assert result.covered
    assert result.warning() == ""


def test_override_marking_2027_new_year_as_holiday_changes_the_deadline():
    cal = WorkingCalendar(overrides={date(2027, 1, 1): False})
    # Jan 1 off, Jan 2–3 weekend → Mon Jan 4.
    result = compute_deadline(cal, at(2026, 12, 31, 16), 1, "days")
    assert result.due == at(2027, 1, 4, 17, 30)
    # Jan 2–4 were still decided by the Mon–Fri assumption.
    assert result.assumed_weekdays == [2027]
    assert compute_deadline(cal, at(2026, 12, 31, 16), 5, "hours").due == at(2027, 1, 4, 12)


def test_complete_years_silence_the_assumption_warning():
    cal = WorkingCalendar(overrides={date(2027, 1, 1): False}, complete_years=[2027])
    result = compute_deadline(cal, at(2026, 12, 31, 16), 1, "days")
    assert result == Deadline(at(2027, 1, 4, 17, 30), [])


# --- overdue ---------------------------------------------------------------------------------


def test_overdue_is_strictly_after_the_deadline():
    deadline = at(2026, 11, 23, 15, 30)
    assert not overdue(deadline, deadline)
    assert overdue(deadline, deadline + dt.timedelta(seconds=1))
    assert not overdue(deadline, at(2026, 11, 23, 7, 30, tz=UTC))  # 15:30 Shanghai


def test_working_hours_between(cal):
    assert cal.working_hours_between(at(2026, 11, 24, 11), at(2026, 11, 24, 14)) == 1.5
    # Fri 16:00 → Mon 10:00: 1.5 + 1.5.
    assert cal.working_hours_between(at(2026, 11, 27, 16), at(2026, 11, 30, 10)) == 3.0
    # Sep 30 16:00 → Oct 8 12:00 across National Day: 1.5 + 3.5.
    assert cal.working_hours_between(at(2026, 9, 30, 16), at(2026, 10, 8, 12)) == 5.0
    assert cal.working_hours_between(at(2026, 11, 30, 10), at(2026, 11, 27, 16)) == -3.0
    assert cal.working_hours_between(at(2026, 11, 28, 9), at(2026, 11, 29, 17)) == 0.0


def test_overdue_factor_in_working_hours(cal):
    # Mon 2026-11-23 09:00, 5 working hours → 15:30 the same day.
    start = at(2026, 11, 23, 9)
    deadline = compute_deadline(cal, start, 5, "hours").due
    assert deadline == at(2026, 11, 23, 15, 30)
    # 3 h elapsed by 12:00 → 0.6.
    assert overdue_factor(start, deadline, at(2026, 11, 23, 12), cal) == pytest.approx(0.6)
    # 15 h elapsed: Mon 7 h to 17:30, Tue 7.5 h (14.5), Wed 08:30 + 0.5 → Wed 09:00.
    three_x = at(2026, 11, 25, 9)
    assert overdue_factor(start, deadline, three_x, cal) == 3.0
    assert is_3x_overdue(start, deadline, three_x, cal)
    one_minute_before = three_x - dt.timedelta(minutes=1)
    assert overdue_factor(start, deadline, one_minute_before, cal) < 3
    assert not is_3x_overdue(start, deadline, one_minute_before, cal)
    # Tue 17:30: 14.5 / 5 = 2.9 — overdue but not 3×.
    assert overdue(deadline, at(2026, 11, 24, 17, 30))
    assert not is_3x_overdue(start, deadline, at(2026, 11, 24, 17, 30), cal)


def test_overdue_factor_in_working_days(cal):
    # Fri 2026-11-27 16:00, 1 working day → Mon 11-30 17:30; allowed 1.5 + 7.5 = 9 h.
    start = at(2026, 11, 27, 16)
    deadline = compute_deadline(cal, start, 1, "days").due
    # 27 h needed: Mon close 9, Tue close 16.5, Wed close 24, Thu 08:30 + 3 → 11:30.
    assert overdue_factor(start, deadline, at(2026, 12, 3, 11, 30), cal) == 3.0
    assert is_3x_overdue(start, deadline, at(2026, 12, 3, 11, 30), cal)
    assert not is_3x_overdue(start, deadline, at(2026, 12, 3, 11, 29), cal)
    # The weekend after Thu does not add anything: still 3× on Sunday.
    assert is_3x_overdue(start, deadline, at(2026, 12, 6, 12), cal)


def test_overdue_factor_edges(cal):
    start = at(2026, 11, 28, 10)  # a Saturday
    assert overdue_factor(start, start, at(2026, 11, 28, 12), cal) == 0.0  # nothing elapsed
    assert overdue_factor(start, start, at(2026, 11, 30, 9), cal) == float("inf")
    assert is_3x_overdue(start, start, at(2026, 11, 30, 9), cal)
    assert overdue_factor(start, at(2026, 11, 30, 12), at(2026, 11, 27, 9), cal) == 0.0


# --- extensions ------------------------------------------------------------------------------


def test_extension_in_hours_counts_from_the_current_deadline(cal):
    # Deadline Fri 17:30 + 2 h → Mon 08:30 + 2 h = 10:30.
    assert extend(at(2026, 11, 27, 17, 30), 2, "hours", cal) == Deadline(at(2026, 11, 30, 10, 30))


def test_extension_in_days(cal):
    # Deadline Mon 11-30 17:30 + 2 working days → Wed 12-02 17:30.
    assert extend(at(2026, 11, 30, 17, 30), 2, "days", cal).due == at(2026, 12, 2, 17, 30)
    # Across National Day: Wed Sep 30 close + 1 → Thu Oct 8 close.
    assert extend(at(2026, 9, 30, 17, 30), 1, "days", cal).due == at(2026, 10, 8, 17, 30)


def test_extension_keeps_the_years_already_assumed(cal):
    first = compute_deadline(cal, at(2026, 12, 31, 16), 1, "days")
    assert extend(first, 1, "days", cal) == Deadline(at(2027, 1, 4, 17, 30), [2027])


# --- bad input -------------------------------------------------------------------------------


def test_naive_datetimes_are_refused(cal):
    naive = dt.datetime(2026, 11, 24, 9)
    aware = at(2026, 11, 24, 9)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        cal.add_working_hours(naive, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_working_days(naive, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(cal, naive, 1, "hours")
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.working_hours_between(aware, naive)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        overdue(aware, naive)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        overdue_factor(aware, aware, naive, cal)
    with pytest.raises(ValueError, match="timezone-aware"):
        extend(naive, 1, "hours", cal)


@pytest.mark.parametrize(
    ("amount", "unit", "message"),
    [
        (1, "weeks", "unit must be one of hours, days"),
        (-1, "hours", ">= 0"),
        (float("nan"), "hours", ">= 0"),
        ("abc", "hours", "must be a number"),
        (0, "days", ">= 1"),
        (1.5, "days", "whole number"),
    ],
)
def test_bad_amounts_and_units_are_refused(cal, amount, unit, message):
    with pytest.raises(ValueError, match=message):
        compute_deadline(cal, at(2026, 11, 24, 9), amount, unit)


# --- configuration ---------------------------------------------------------------------------


def test_working_hours_from_settings(settings):
    settings.WEIGE_WORKING_HOURS = "09:00-12:00, 14:00-18:00"
    cal = WorkingCalendar.from_settings()
    assert cal.hours == ((time(9), time(12)), (time(14), time(18)))
    assert cal.hours_per_day == 7.0
    # Tue 11:00 + 2 h: 1 h to 12:00, 1 h from 14:00 → 15:00.
    assert cal.add_working_hours(at(2026, 11, 24, 11), 2) == at(2026, 11, 24, 15)
    # Working days end at the new close of business, 18:00.
    assert cal.add_working_days(at(2026, 11, 27, 16), 1) == at(2026, 11, 30, 18)


def test_default_hours_when_the_setting_is_absent(settings):
    del settings.WEIGE_WORKING_HOURS
    assert WorkingCalendar.from_settings().hours == (
        (time(8, 30), time(12)),
        (time(13, 30), time(17, 30)),
    )


def test_bad_setting_is_an_improperly_configured_error(settings):
    settings.WEIGE_WORKING_HOURS = "08:30-12:00,12:30-11:00"
    with pytest.raises(ImproperlyConfigured, match="WEIGE_WORKING_HOURS.*ends before it starts"):
        WorkingCalendar.from_settings()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8:30-12", "HH:MM-HH:MM"),
        ("25:00-26:00", "invalid time"),
        ("08:30-12:00,11:00-13:00", "overlap"),
        ("", "at least one"),
    ],
)
def test_parse_working_hours_refuses_bad_values(value, message):
    with pytest.raises(ValueError, match=message):
        parse_working_hours(value)


def test_single_period_and_pairs_are_accepted():
    assert parse_working_hours([("13:30", "17:30"), (time(8, 30), time(12))]) == (
        (time(8, 30), time(12)),
        (time(13, 30), time(17, 30)),
    )
    cal = WorkingCalendar(hours="09:00-17:00")
    # Fri 16:00 + 2 h: 1 h Friday, Mon 09:00 + 1 h.
    assert cal.add_working_hours(at(2026, 11, 27, 16), 2) == at(2026, 11, 30, 10)


# --- the day table ---------------------------------------------------------------------------


def test_day_table_widens_backwards_and_forwards_and_agrees_with_the_package():
    import chinese_calendar

    cal = WorkingCalendar()
    assert cal.is_workday(date(2026, 10, 10))  # table starts at 2026
    day = date(2004, 1, 1)  # then widen back to the package's first year ...
    while day.year <= 2026:
        assert cal.is_workday(day) is chinese_calendar.is_workday(day), day
        day += dt.timedelta(days=1)
    assert cal.is_workday(date(2030, 1, 7))  # ... and forwards (a Monday, assumed)
    # Elapsed time over years is not a day-by-day walk but must still be right:
    # 2026-11-23 (Mon) 08:30 → 2026-11-30 (Mon) 08:30 is 5 working days = 37.5 h.
    assert cal.working_hours_between(at(2026, 11, 23, 8, 30), at(2026, 11, 30, 8, 30)) == 37.5


def test_absurd_amounts_are_refused_not_looped_forever(cal):
    with pytest.raises(ValueError, match="after the year 9999"):
        cal.add_working_days(at(2026, 11, 24, 9), 10**9)
    with pytest.raises(ValueError, match="after the year 9999"):
        cal.add_working_hours(at(2026, 11, 24, 9), 1e12)


def test_overrides_are_read_only_after_construction():
    source = {date(2027, 1, 1): False}
    cal = WorkingCalendar(overrides=source)
    source[date(2027, 1, 4)] = False  # changing the caller's dict has no effect
    assert cal.is_workday(date(2027, 1, 4))
    with pytest.raises(TypeError):
        cal.overrides[date(2027, 1, 5)] = False


# --- many at once: the same as one at a time, row by row --------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
PLUS8 = dt.timezone(dt.timedelta(hours=8))


def assert_batch_is_scalar(starts, amounts, units, batch_cal, scalar_cal=None):
    """compute_deadlines and three_times_overdue_at_many (and deadlines_and_three_times) on
    ``batch_cal`` give for every row exactly what compute_deadline and three_times_overdue_at
    give on a separate calendar with the same settings (so the day tables differ in extent):
    the same instant, the same wall clock time and zone, the same assumed years and warning."""
    scalar_cal = scalar_cal or WorkingCalendar(
        hours=batch_cal.hours,
        tz=batch_cal.tz,
        overrides=batch_cal.overrides,
        complete_years=batch_cal.complete_years,
    )
    n = len(starts)
    amounts = amounts if isinstance(amounts, list) else [amounts] * n
    units = units if isinstance(units, list) else [units] * n
    batch = compute_deadlines(batch_cal, starts, amounts, units)
    three = three_times_overdue_at_many(starts, batch, batch_cal)
    warnings = batch.warnings()
    # the bulk import's way to both: the same values, the same zones
    fused, fused_three = deadlines_and_three_times(batch_cal, starts, amounts, units)
    assert fused == batch
    assert [(d.tzinfo, d.fold) for d in fused.due] == [(d.tzinfo, d.fold) for d in batch.due]
    assert fused_three == three
    assert [(d.tzinfo, d.fold) for d in fused_three] == [(d.tzinfo, d.fold) for d in three]
    assert len(batch) == len(three) == len(warnings) == n
    for k, (start, amount, unit) in enumerate(zip(starts, amounts, units, strict=True)):
        expected = compute_deadline(scalar_cal, start, amount, unit)
        expected_3x = three_times_overdue_at(start, expected.due, scalar_cal)
        row = (start, amount, unit)
        assert batch[k] == expected, row
        assert batch.due[k].tzinfo is expected.due.tzinfo, row
        assert batch.due[k].replace(tzinfo=None) == expected.due.replace(tzinfo=None), row
        assert batch.due[k].fold == expected.due.fold, row
        assert warnings[k] == expected.warning(), row
        assert three[k] == expected_3x, row
        assert three[k].tzinfo is expected_3x.tzinfo, row
        assert three[k].replace(tzinfo=None) == expected_3x.replace(tzinfo=None), row
    return batch, three


def random_starts(rng, n, first_year=2004, last_year=2030):
    """Random moments, a third of them on the hour or half hour (period bounds, midnight),
    some with microseconds, in Shanghai time, UTC, a fixed +08:00 and Berlin time."""
    lo = dt.datetime(first_year, 1, 1, tzinfo=SH)
    span = (dt.datetime(last_year + 1, 1, 1, tzinfo=SH) - lo) // dt.timedelta(microseconds=1)
    starts = []
    for _ in range(n):
        start = lo + dt.timedelta(microseconds=rng.randrange(span))
        kind = rng.random()
        if kind < 0.35:
            start = start.replace(
                hour=rng.choice([0, 8, 12, 13, 17, 23]),
                minute=rng.choice([0, 30]),
                second=0,
                microsecond=0,
            )
        elif kind < 0.6:
            start = start.replace(microsecond=0)
        starts.append(start.astimezone(rng.choice([SH, SH, UTC, PLUS8, BERLIN])))
    return starts


def random_hours(rng):
    return rng.choice(
        [0, 0.5, 1, 1 / 3, 2.75, 3.5, 4, 7.5, 8, 15, 24, 37.5, 100, 0.01, 2000, 20_000]
        + [round(rng.uniform(0, 60), 2), rng.uniform(0, 30)]
    )


def random_days(rng):
    return rng.choice([1, 2, 3, 5, 7, 10, 15, 20, 30, 60, 250, 1000, 3.0])


def test_batch_equals_scalar_on_random_hours_2004_to_2030():
    rng = random.Random(20261126)
    starts = random_starts(rng, 2500)
    assert_batch_is_scalar(starts, [random_hours(rng) for _ in starts], "hours", WorkingCalendar())


def test_batch_equals_scalar_on_random_days_2004_to_2030():
    rng = random.Random(20261127)
    starts = random_starts(rng, 2500)
    assert_batch_is_scalar(starts, [random_days(rng) for _ in starts], "days", WorkingCalendar())


def test_batch_equals_scalar_with_mixed_units_per_row():
    rng = random.Random(20261128)
    starts = random_starts(rng, 1500)
    units = [rng.choice(["hours", "days"]) for _ in starts]
    amounts = [random_hours(rng) if u == "hours" else random_days(rng) for u in units]
    batch, _ = assert_batch_is_scalar(starts, amounts, units, WorkingCalendar())
    assert any(batch.assumed_weekdays) and not all(batch.assumed_weekdays)


@pytest.mark.parametrize(
    "make",
    [
        lambda: WorkingCalendar(hours="09:00-17:00"),
        lambda: WorkingCalendar(hours="00:00-01:00,08:00-12:00,12:30-13:00,14:00-23:59"),
        lambda: WorkingCalendar(
            overrides={
                date(2027, 1, 1): False,
                date(2026, 10, 9): False,
                date(2026, 10, 11): True,
                date(2030, 2, 2): True,
            },
            complete_years=[2028],
        ),
        lambda: WorkingCalendar(tz=BERLIN),
    ],
    ids=["one period", "four periods", "overrides", "berlin"],
)
def test_batch_equals_scalar_on_other_calendars(make):
    rng = random.Random(20261129)
    starts = random_starts(rng, 600, 2025, 2030)
    units = [rng.choice(["hours", "days"]) for _ in starts]
    amounts = [random_hours(rng) if u == "hours" else random_days(rng) for u in units]
    assert_batch_is_scalar(starts, amounts, units, make())


BOUNDS = [
    (0, 0, 0),
    (8, 0, 0),
    (8, 29, 59),
    (8, 30, 0),
    (10, 0, 0),
    (11, 59, 59),
    (12, 0, 0),
    (12, 30, 0),
    (13, 29, 59),
    (13, 30, 0),
    (17, 29, 59),
    (17, 30, 0),
    (20, 0, 0),
    (23, 59, 59),
]
EDGE_DAYS = [
    date(2026, 11, 27),  # Friday
    date(2026, 11, 28),  # Saturday
    date(2026, 10, 1),  # National Day
    date(2026, 10, 10),  # make-up Saturday
    date(2026, 12, 31),  # last covered working day: counting runs into assumed 2027
    date(2027, 1, 1),  # Friday, assumed a working day
    date(2027, 1, 2),  # Saturday, assumed
    date(2003, 12, 31),  # before the package's years: assumed
    date(2004, 1, 1),  # New Year, the package's first day
]
EDGE_HOURS = [0, 0.5, 1, 1 / 3, 3.5, 4, 7.5, 11, 15, 37.5, 1000.25, 30_000]


@pytest.mark.parametrize("day", EDGE_DAYS, ids=str)
def test_batch_equals_scalar_at_period_bounds_holidays_and_year_ends(day):
    starts = [
        dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=SH) for h, m, s in BOUNDS
    ] + [dt.datetime(day.year, day.month, day.day, 23, 59, 59, 999_999, tzinfo=SH)]
    starts += [s.astimezone(UTC) for s in starts]
    rows = [(s, a, "hours") for s in starts for a in EDGE_HOURS]
    rows += [(s, a, "days") for s in starts for a in (1, 2, 5, 300)]
    starts, amounts, units = (list(column) for column in zip(*rows, strict=True))
    assert_batch_is_scalar(starts, amounts, units, WorkingCalendar())


def test_batch_reports_assumed_years_like_the_scalar_across_years():
    cal = WorkingCalendar()
    starts = [at(2026, 12, 31, 16), at(2026, 12, 31, 16), at(2027, 3, 1, 9), at(2026, 3, 2, 9)]
    batch, _ = assert_batch_is_scalar(starts, [1, 4000, 1, 2], "days", cal)
    # 4000 working days from the end of 2026 reach into 2042, every year of them assumed.
    assert batch.assumed_weekdays == [(2027,), tuple(range(2027, 2043)), (2027,), ()]
    warnings = batch.warnings()
    assert warnings[0] == batch[0].warning() != ""
    assert "2027" in warnings[0] and warnings[3] == ""
    assert isinstance(batch[0], Deadline) and batch[0].assumed_weekdays == [2027]


def test_three_times_overdue_at_many_for_any_deadlines():
    cal = WorkingCalendar()
    friday, saturday = at(2026, 11, 27, 16), at(2026, 11, 28, 9)
    pairs = [
        (friday, friday),  # no working time allowed: the start itself
        (saturday, at(2026, 11, 29, 20)),  # Saturday → Sunday: none either
        (friday, at(2026, 11, 26, 9)),  # a deadline before the start: none
        (friday, at(2026, 11, 28, 10)),  # 1.5 h on Friday
        (friday, at(2026, 11, 30, 9)),  # 1.5 h Friday + 0.5 h Monday = 2 h
        (saturday, at(2027, 6, 1, 12)),
    ]
    starts, deadlines = ([p[0] for p in pairs], [p[1] for p in pairs])
    got = three_times_overdue_at_many(starts, deadlines, cal)
    assert got == [three_times_overdue_at(s, d, cal) for s, d in pairs]
    assert got[0] is friday and got[1] is saturday and got[2] is friday
    assert got[3] == at(2026, 11, 30, 11, 30)  # 4.5 h: 1.5 h Friday, 3 h Monday
    assert got[4] == at(2026, 11, 30, 14, 30)  # 6 h: 1.5 h Fri, 3.5 h Mon morning, 1 h
    utc_start = friday.astimezone(UTC)
    assert three_times_overdue_at_many([utc_start], [friday], cal)[0] is utc_start


def test_calendar_batch_methods_and_one_amount_for_every_start(cal):
    starts = [at(2026, 11, 27, 16), at(2026, 11, 28, 9), at(2026, 11, 30, 8)]
    assert cal.add_working_hours_many(starts, 2) == [cal.add_working_hours(s, 2) for s in starts]
    assert cal.add_working_days_many(starts, [1, 2, 3]) == [
        cal.add_working_days(s, d) for s, d in zip(starts, [1, 2, 3], strict=True)
    ]
    assert cal.add_working_days_many(starts, 1) == [
        at(2026, 11, 30, 17, 30),
        at(2026, 11, 30, 17, 30),
        at(2026, 12, 1, 17, 30),
    ]


def test_empty_batches(cal):
    batch = compute_deadlines(cal, [], [], "hours")
    assert isinstance(batch, Deadlines) and len(batch) == 0 and batch.warnings() == []
    assert compute_deadlines(cal, [], 5, "days").due == []
    assert three_times_overdue_at_many([], [], cal) == []


@pytest.mark.parametrize(
    ("starts", "amounts", "unit", "error", "message"),
    [
        ([at(2026, 11, 24, 9), dt.datetime(2026, 11, 24, 9)], [1, 1], "hours", ValueError, "naive"),
        (["2026-11-24"], [1], "hours", TypeError, "must be a datetime"),
        ([at(2026, 11, 24, 9)], [-1], "hours", ValueError, "finite number >= 0, got -1.0"),
        ([at(2026, 11, 24, 9)], [float("nan")], "hours", ValueError, "finite number >= 0"),
        ([at(2026, 11, 24, 9)], [float("inf")], "hours", ValueError, "finite number >= 0"),
        ([at(2026, 11, 24, 9)], ["x"], "hours", ValueError, "must be a number, got 'x'"),
        ([at(2026, 11, 24, 9)], [None], "hours", ValueError, "must be a number, got None"),
        ([at(2026, 11, 24, 9)], [1.5], "days", ValueError, "whole number, got 1.5"),
        ([at(2026, 11, 24, 9)], [True], "days", ValueError, "whole number, got True"),
        ([at(2026, 11, 24, 9)], [0], "days", ValueError, "must be >= 1, got 0"),
        ([at(2026, 11, 24, 9)], [1], "weeks", ValueError, "unit must be one of"),
        ([at(2026, 11, 24, 9)], [10**9], "days", ValueError, "after the year 9999"),
        ([at(2026, 11, 24, 9)], [1e12], "hours", ValueError, "after the year 9999"),
    ],
)
def test_batch_refuses_what_the_scalar_refuses(cal, starts, amounts, unit, error, message):
    with pytest.raises(error, match=message):
        compute_deadlines(cal, starts, amounts, unit)
    with pytest.raises(error, match=message):
        for start, amount in zip(starts, amounts * len(starts), strict=False):
            compute_deadline(cal, start, amount, unit)


def test_batch_refuses_mismatched_lengths_and_naive_deadlines(cal):
    start, other = at(2026, 11, 24, 9), at(2026, 11, 25)
    with pytest.raises(ValueError, match="2 amounts for 1 starts"):
        compute_deadlines(cal, [start], [1, 2], "days")
    with pytest.raises(ValueError, match="2 units for 1 starts"):
        compute_deadlines(cal, [start], 1, ["days", "hours"])
    with pytest.raises(ValueError, match="2 deadlines for 1 starts"):
        three_times_overdue_at_many([start], [other, other], cal)
    with pytest.raises(ValueError, match="deadline must be timezone-aware"):
        three_times_overdue_at_many([start], [dt.datetime(2026, 11, 25)], cal)
