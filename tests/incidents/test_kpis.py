"""Each indicator on a hand-computed set of eight incidents in grid 1 (plus one elsewhere)."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.gis.geos import Point

from incidents.kpis import indicators, indicators_of_units
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
        **extra,
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
            **extra,
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
    return {**t, "make": make}


def test_indicators_of_a_grid_match_the_hand_computation(data):
    k = indicators(data["grid1"], START, END)
    assert k.reports == 8
    assert k.valid == 7 and k.valid_report_rate == pytest.approx(7 / 8)
    assert k.accepted == 5 and k.acceptance_rate == pytest.approx(5 / 7)
    # handled: 1, 2, 3, 6 → 4; overdue unhandled: 4 and 8 → due to close 6
    assert k.handled == 4 and k.due_to_close == 6
    assert k.closed == 3 and k.closure_rate == pytest.approx(3 / 6)
    assert k.closed_on_time == 2 and k.on_time_closure_rate == pytest.approx(2 / 6)
    # checks due: the handled 1, 2, 3 (6 was self-resolved: no check); by the deadline:
    # 1 (day 3 ≤ 5) and 3 (day 4 ≤ 5) → 2 of 3
    assert k.due_to_check == 3
    assert k.checked_on_time == 2 and k.on_time_check_rate == pytest.approx(2 / 3)
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


def test_a_deadline_still_ahead_is_not_missed_yet(data):
    # Seen on June 8: 4 (deadline day 10) and 8 (day 20) are not overdue yet, so only the
    # handled 1, 2, 3, 6 are due to close; 4's extension is not among them.
    k = indicators(data["grid1"], START, END, now=at(8))
    assert k.due_to_close == 4
    assert k.closure_rate == pytest.approx(3 / 4)
    assert k.on_time_closure_rate == pytest.approx(2 / 4)
    assert k.rework_rate == pytest.approx(1 / 4)
    assert k.extended == 0 and k.extension_rate == 0
    assert k.due_to_check == 3 and k.on_time_check_rate == pytest.approx(2 / 3)


def test_a_handled_incident_is_due_for_a_check_once_checked_or_late(data):
    # 9: handled on day 3, not checked yet, deadline day 12
    data["make"]("handled", [("accept", 2), ("handle", 3)], 12)
    early = indicators(data["grid1"], START, END, now=at(8))
    assert early.handled == 5 and early.due_to_check == 3
    assert early.on_time_check_rate == pytest.approx(2 / 3)
    late = indicators(data["grid1"], START, END)
    assert late.due_to_check == 4 and late.on_time_check_rate == pytest.approx(2 / 4)


def test_an_incident_without_a_grid_counts_for_its_community_and_street(data):
    data["make"](
        "reported", [], 20, unit=None, grid=None, community=data["community"], street=data["street"]
    )
    assert indicators(data["community"], START, END).reports == 10
    assert indicators(data["street"], START, END).reports == 10
    assert indicators(data["grid1"], START, END).reports == 8
    assert indicators(None, START, END).reports == 10


def test_a_table_of_units_takes_one_query_and_matches_unit_by_unit(data, django_assert_num_queries):
    units = [data[k] for k in ("community", "grid1", "grid2", "micro11", "micro12", "micro21")]
    with django_assert_num_queries(1):
        table = indicators_of_units(units, START, END)
    for unit in units:
        assert table[unit.pk] == indicators(unit, START, END)
    assert table[data["grid1"].pk].reports == 8
    assert table[data["micro12"].pk].reports == 0


def test_hundreds_of_units_are_read_in_chunks_of_subtrees(
    data, monkeypatch, django_assert_num_queries
):
    """SQLite refuses deep expression trees: many units are read a chunk at a time."""
    from incidents import kpis

    monkeypatch.setattr(kpis, "SUBTREES_PER_QUERY", 1)
    units = [data[k] for k in ("grid1", "grid2", "micro11", "micro12")]
    with django_assert_num_queries(2):  # grid 1 (with its micro-grids), grid 2
        table = indicators_of_units(units, START, END)
    assert table[data["grid1"].pk].reports == 8 and table[data["grid2"].pk].reports == 1
    assert table[data["micro12"].pk] == indicators(data["micro12"], START, END)


def test_a_duplicate_report_is_not_a_valid_report(data):
    data["make"]("duplicate", [("mark_duplicate", 3)], 20)
    k = indicators(data["grid1"], START, END)
    assert k.reports == 9 and k.valid == 7
    assert k.valid_report_rate == pytest.approx(7 / 9)
    assert k.acceptance_rate == pytest.approx(5 / 7)
