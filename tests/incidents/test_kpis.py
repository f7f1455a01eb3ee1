"""Each indicator on a hand-computed set of eight incidents in grid 1 (plus one elsewhere)."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.gis.geos import Point

from incidents.kpis import indicators
from incidents.models import Category, Incident, TimelineEntry

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
START = datetime.datetime(2025, 6, 1, tzinfo=SH)
END = datetime.datetime(2025, 7, 1, tzinfo=SH)


def at(day, hour=9):
    return datetime.datetime(2025, 6, day, hour, 0, tzinfo=SH)


REPORTED = at(2)
JULY_10 = datetime.datetime(2025, 7, 10, tzinfo=SH)


@pytest.fixture
def data(small_territory):
    from incidents.categories import load_seed

    if not Category.objects.filter(code="C0101").exists():
        load_seed()
    category = Category.objects.get(code="C0101")
    t = small_territory

    def make(
        state,
        steps,
        deadline_day,
        closed=None,
        unit=t["micro11"],
        grid=t["grid1"],
        reported=REPORTED,
    ):
        incident = Incident.objects.create(
            location=Point(104.005, 30.607, srid=4326),
            input_lon=104.005,
            input_lat=30.607,
            category=category,
            source="patrol",
            reported_at=reported,
            state=state,
            unit=unit,
            grid=grid,
            deadline=deadline_day
            if isinstance(deadline_day, datetime.datetime)
            else at(deadline_day),
            closed_at=closed,
        )
        for action, day in steps:
            TimelineEntry.objects.create(incident=incident, action=action, at=at(day))
        return incident

    # 1: accepted, handled, checked, closed on time (closed day 4, deadline day 5): 48 h
    make("closed", [("accept", 2), ("handle", 3), ("check", 3), ("close", 4)], 5, at(4))
    # 2: accepted, handled, checked late, closed late (deadline day 3): 96 h
    make("closed", [("accept", 2), ("handle", 3), ("check", 5), ("close", 6)], 3, at(6))
    # 3: accepted, handled, failed check (rework on time), still open
    make("rework", [("accept", 2), ("handle", 3), ("rework", 4)], 5)
    # 4: accepted, extension approved, in progress, overdue (deadline day 10 < END)
    make("in_progress", [("accept", 2), ("approve_extension", 4)], 10)
    # 5: accepted, in progress, not yet due (deadline in July)
    make("in_progress", [("accept", 2)], 5).__class__.objects.filter(
        deadline=at(5), state="in_progress"
    ).update(deadline=datetime.datetime(2025, 7, 10, tzinfo=SH))
    # 6: self-resolved and closed on time: 24 h
    make("closed", [("self_resolve", 2), ("close", 3)], 4, at(3))
    # 7: voided
    make("void", [("void", 2)], 5, at(2))
    # 8: reported only, overdue (deadline day 20)
    make("reported", [], 20)
    # elsewhere: grid 2, must not count for grid 1
    make("reported", [], 20, unit=t["micro21"], grid=t["grid2"])
    # outside the period
    make("reported", [], 20, reported=datetime.datetime(2025, 5, 1, tzinfo=SH))
    return t


def test_indicators_of_a_grid_match_the_hand_computation(data):
    k = indicators(data["grid1"], START, END)
    assert k.reports == 8
    assert k.valid == 7 and k.valid_report_rate == pytest.approx(7 / 8)
    assert k.accepted == 5 and k.acceptance_rate == pytest.approx(5 / 7)
    # handled: 1, 2, 3, 6 → 4; overdue unhandled: 4 and 8 → due to close 6
    assert k.handled == 4 and k.due_to_close == 6
    assert k.closed == 3 and k.closure_rate == pytest.approx(3 / 6)
    assert k.closed_on_time == 2 and k.on_time_closure_rate == pytest.approx(2 / 6)
    # checks by the deadline among handled: 1 (day 3 ≤ 5) and 3 (day 4 ≤ 5) → 2 of 4
    assert k.checked_on_time == 2 and k.on_time_check_rate == pytest.approx(2 / 4)
    assert k.rework == 1 and k.rework_rate == pytest.approx(1 / 6)
    assert k.extended == 1 and k.extension_rate == pytest.approx(1 / 6)
    assert k.self_resolved == 1
    assert k.mean_hours_to_close == pytest.approx((48 + 96 + 24) / 3)


def test_a_higher_unit_counts_everything_below_it(data):
    assert indicators(data["community"], START, END).reports == 9
    assert indicators(data["grid2"], START, END).reports == 1


def test_rates_without_a_denominator_are_none(data):
    k = indicators(data["grid2"], END, END + datetime.timedelta(days=30))
    assert k.reports == 0 and k.valid_report_rate is None and k.closure_rate is None
