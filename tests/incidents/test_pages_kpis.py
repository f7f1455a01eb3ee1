"""The KPI page and its CSV export: hand-computed values, colour bands, drill-down, scope."""

import csv
import datetime
import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.contrib.gis.geos import Point

from grids.models import Unit
from incidents.bands import FAIR, GOOD, POOR, band
from incidents.models import Category, Incident, TimelineEntry
from incidents.views.kpi import preset_period
from tests.conftest import rect

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
JUNE = "from=2025-06-01&to=2025-06-30"
OTHER_COMMUNITY = "510199001002"


def at(day: int, hour: int = 9) -> datetime.datetime:
    return datetime.datetime(2025, 6, day, hour, 0, tzinfo=SH)


def make(unit, state, steps, deadline_day, closed_day=None, reported=None):
    """An incident in micro-grid or grid `unit` with timeline `steps` [(action, day)]."""
    grid = unit if unit.kind == "grid" else unit.parent
    incident = Incident.objects.create(
        location=Point(104.005, 30.607, srid=4326),
        input_lon=104.005,
        input_lat=30.607,
        category=Category.objects.get(code="C0101"),
        source="patrol",
        reported_at=reported or at(2),
        state=state,
        unit=unit if unit.kind == "microgrid" else None,
        grid=grid,
        community=grid.parent,
        street=grid.parent.parent,
        deadline=at(deadline_day),
        closed_at=at(closed_day) if closed_day else None,
    )
    for action, day in steps:
        TimelineEntry.objects.create(incident=incident, action=action, at=at(day))
    return incident


@pytest.fixture
def data(small_territory, make_unit, seeded):
    t = dict(small_territory)
    t["other"] = make_unit(
        "community",
        OTHER_COMMUNITY,
        rect(104.02, 30.60, 104.04, 30.61),
        parent=t["street"],
        name="河西社区",
    )
    t["other_grid"] = make_unit(
        "grid", f"{OTHER_COMMUNITY}001", rect(104.02, 30.60, 104.04, 30.61), parent=t["other"]
    )
    micro11 = t["micro11"]
    # grid 1 (all in micro-grid 1-1):
    # 1: checked on day 3 and closed on day 4, deadline day 5: on time, 48 h
    make(micro11, "closed", [("accept", 2), ("handle", 3), ("check", 3), ("close", 4)], 5, 4)
    # 2: checked on day 5 and closed on day 6, deadline day 3: late, 96 h
    make(micro11, "closed", [("accept", 2), ("handle", 3), ("check", 5), ("close", 6)], 3, 6)
    # 3: reported only, deadline day 20 passed: overdue unhandled
    make(micro11, "reported", [], 20)
    # 4: voided
    make(micro11, "void", [("void", 2)], 5, 2)
    # grid 2: 5: self-resolved and closed on day 3, deadline day 4: 24 h
    make(t["micro21"], "closed", [("self_resolve", 2), ("close", 3)], 4, 3)
    # the other community, and grid 1 outside the period: never counted
    make(t["other_grid"], "reported", [], 20)
    make(micro11, "reported", [], 20, reported=datetime.datetime(2025, 5, 31, 23, 59, tzinfo=SH))
    return t


@pytest.fixture
def chief(client, user_in, data):
    client.force_login(user_in(data["community"], "grid_chief", username="chief"))
    return client


def rows_of(response) -> dict[str, object]:
    return {row["unit"].code: row["k"] for row in response.context["rows"]}


def cell(response, code: str, rate: str) -> str:
    """The HTML of one rate cell of the row of unit `code`."""
    row = re.search(rf'<tr data-unit="{code}"[^>]*>(.*?)</tr>', response.text, re.S).group(1)
    found = re.search(
        rf'<td class="([^"]*)" title="([^"]*)" data-rate="{rate}">(.*?)<small', row, re.S
    )
    return f"{found.group(1)}|{found.group(2)}|{found.group(3).strip()}"


def test_the_table_has_the_unit_and_its_children_with_hand_computed_values(chief, data):
    response = chief.get(f"/incidents/kpis?unit={data['community'].code}&{JUNE}")
    assert response.status_code == 200
    assert [row["unit"] for row in response.context["rows"]] == [
        data["community"],
        data["grid1"],
        data["grid2"],
    ]
    k = rows_of(response)
    g1, g2, c = k[data["grid1"].code], k[data["grid2"].code], k[data["community"].code]
    assert (g1.reports, g1.valid, g1.accepted, g1.handled) == (4, 3, 2, 2)
    assert (g1.due_to_close, g1.closed, g1.closed_on_time) == (3, 2, 1)
    assert (g1.due_to_check, g1.checked_on_time) == (2, 1)
    assert g1.valid_report_rate == pytest.approx(3 / 4)
    assert g1.acceptance_rate == pytest.approx(2 / 3)
    assert g1.closure_rate == pytest.approx(2 / 3)
    assert g1.on_time_closure_rate == pytest.approx(1 / 3)
    assert g1.on_time_check_rate == pytest.approx(1 / 2)
    assert g1.rework_rate == 0 and g1.extension_rate == 0
    assert g1.mean_hours_to_close == pytest.approx(72)
    # grid 2: the self-resolved incident needs no check, so no check was due
    assert (g2.reports, g2.accepted, g2.due_to_close, g2.closed, g2.self_resolved) == (
        1,
        0,
        1,
        1,
        1,
    )
    assert g2.due_to_check == 0 and g2.on_time_check_rate is None
    assert g2.mean_hours_to_close == pytest.approx(24)
    # the community: both grids, not the other community, not May
    assert (c.reports, c.valid, c.accepted, c.due_to_close, c.closed) == (5, 4, 2, 4, 3)
    assert c.closure_rate == pytest.approx(3 / 4)
    assert c.mean_hours_to_close == pytest.approx((48 + 96 + 24) / 3)


def test_rates_are_coloured_by_band_with_their_counts_in_a_tooltip(chief, data):
    response = chief.get(f"/incidents/kpis?unit={data['community'].code}&{JUNE}")
    g1, g2, c = data["grid1"].code, data["grid2"].code, data["community"].code
    assert cell(response, g1, "valid_report_rate") == (
        "num band-fair|valid reports 3 / reports 4|75.0%"
    )
    assert cell(response, g1, "closure_rate") == "num band-poor|closed 2 / due to close 3|66.7%"
    assert cell(response, g1, "rework_rate") == "num band-good|rework 0 / due to close 3|0.0%"
    assert cell(response, g2, "closure_rate") == "num band-good|closed 1 / due to close 1|100.0%"
    assert cell(response, c, "on_time_check_rate") == (
        "num band-poor|checked on time 1 / due for a check 2|50.0%"
    )
    assert "band-good" in response.text and 'class="kpi-legend"' in response.text
    assert "good ≥ 90%, fair ≥ 70%, poor below" in response.text
    assert "good ≤ 2%, fair ≤ 5%, poor above" in response.text


def test_a_rate_without_denominator_shows_a_dash_and_no_colour(chief, data):
    response = chief.get(f"/incidents/kpis?unit={data['grid1'].code}&{JUNE}")
    assert [row["unit"] for row in response.context["rows"]] == [
        data["grid1"],
        data["micro11"],
        data["micro12"],
    ]
    empty = data["micro12"].code
    assert cell(response, empty, "valid_report_rate") == "num|valid reports 0 / reports 0|—"
    assert cell(response, empty, "closure_rate") == "num|closed 0 / due to close 0|—"


def test_rows_link_to_the_kpis_of_each_child_keeping_the_period(chief, data):
    response = chief.get(f"/incidents/kpis?unit={data['community'].code}&{JUNE}")
    for child in ("grid1", "grid2"):
        code = data[child].code
        assert f'href="?unit={code}&amp;from=2025-06-01&amp;to=2025-06-30"' in response.text
    down = chief.get(f"/incidents/kpis?unit={data['grid1'].code}&{JUNE}")
    # and back up to the community
    assert f'href="?unit={data["community"].code}&amp;from=2025-06-01' in down.text
    assert down.context["parent"] == data["community"]


def test_the_default_unit_is_the_scope_root(chief, data):
    response = chief.get(f"/incidents/kpis?{JUNE}")
    assert response.context["chosen"] == data["community"]
    assert rows_of(response)[data["community"].code].reports == 5


def test_several_scope_roots_are_rows_of_their_own(client, django_user_model, data):
    from grids.models import StaffAssignment, StaffMember

    user = django_user_model.objects.create_user("two", password="pw-123456")
    member = StaffMember.objects.create(name="two", user=user)
    for grid in ("grid2", "grid1"):
        StaffAssignment.objects.create(
            member=member, unit=data[grid], role="grid_chief", start=datetime.date(2024, 1, 1)
        )
    client.force_login(user)
    response = client.get(f"/incidents/kpis?{JUNE}")
    assert response.context["chosen"] is None
    assert [row["unit"] for row in response.context["rows"]] == [data["grid1"], data["grid2"]]


def test_units_outside_the_scope_are_not_found(chief, data):
    assert chief.get(f"/incidents/kpis?unit={OTHER_COMMUNITY}&{JUNE}").status_code == 404
    assert chief.get(f"/incidents/kpis.csv?unit={OTHER_COMMUNITY}&{JUNE}").status_code == 404
    assert chief.get(f"/incidents/kpis?unit={data['street'].code}").status_code == 404


def test_bad_periods_are_refused_with_the_parameter_named(chief, data):
    response = chief.get("/incidents/kpis?period=forever")
    assert response.status_code == 400 and "period=&#x27;forever&#x27;" in response.text
    response = chief.get("/incidents/kpis?from=2025-06-30&to=2025-06-01")
    assert response.status_code == 400 and "is before from=2025-06-30" in response.text
    assert chief.get("/incidents/kpis.csv?from=June").status_code == 400


def test_presets_cover_the_month_the_last_month_30_days_and_the_year():
    today = datetime.date(2025, 3, 15)
    spans = {
        name: (p.first.isoformat(), p.last.isoformat())
        for name in ("this_month", "last_month", "last_30_days", "this_year")
        for p in [preset_period(name, today)]
    }
    assert spans == {
        "this_month": ("2025-03-01", "2025-03-15"),
        "last_month": ("2025-02-01", "2025-02-28"),
        "last_30_days": ("2025-02-14", "2025-03-15"),
        "this_year": ("2025-01-01", "2025-03-15"),
    }
    january = preset_period("last_month", datetime.date(2025, 1, 10))
    assert (january.first, january.last) == (
        datetime.date(2024, 12, 1),
        datetime.date(2024, 12, 31),
    )
    start, end = preset_period("last_month", today).bounds()
    assert end - start == datetime.timedelta(days=28)


def test_the_preset_decides_the_period_when_no_dates_are_given(chief, data):
    response = chief.get("/incidents/kpis?period=last_30_days")
    period = response.context["period"]
    assert period.preset == "last_30_days" and (period.last - period.first).days == 29
    assert chief.get("/incidents/kpis").context["period"].preset == "this_month"


def test_the_csv_export_is_the_same_table_with_four_decimal_rates(chief, data):
    response = chief.get(f"/incidents/kpis.csv?unit={data['community'].code}&{JUNE}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(body[1:])))
    header, rows = table[0], {r[0]: dict(zip(table[0], r, strict=True)) for r in table[1:]}
    assert header[:4] == ["unit code", "unit", "kind", "reports"]
    assert list(rows) == [data["community"].code, data["grid1"].code, data["grid2"].code]
    g1 = rows[data["grid1"].code]
    assert g1["reports"] == "4" and g1["due to close"] == "3" and g1["closed"] == "2"
    assert g1["valid-report rate"] == "0.7500"
    assert g1["closure rate"] == "0.6667"
    assert g1["on-time closure rate"] == "0.3333"
    assert g1["rework rate"] == "0.0000"
    assert g1["mean hours to close"] == "72.00"
    assert rows[data["grid2"].code]["acceptance rate"] == "0.0000"
    assert "kpis-510199001001-2025-06-01-2025-06-30.csv" in response["Content-Disposition"]


def test_the_csv_leaves_a_rate_without_denominator_empty(chief, data):
    response = chief.get(f"/incidents/kpis.csv?unit={data['grid1'].code}&{JUNE}")
    body = b"".join(response.streaming_content).decode("utf-8")[1:]
    table = list(csv.reader(io.StringIO(body)))
    empty = dict(zip(table[0], table[-1], strict=True))
    assert empty["unit code"] == data["micro12"].code
    assert (
        empty["reports"] == "0"
        and empty["closure rate"] == ""
        and empty["mean hours to close"] == ""
    )


def test_bands_follow_the_setting_and_lower_is_better_for_rework(settings):
    assert band("closure_rate", 0.95) == GOOD
    assert band("closure_rate", 0.9) == GOOD
    assert band("closure_rate", 0.75) == FAIR
    assert band("closure_rate", 0.5) == POOR
    assert band("rework_rate", 0.0) == GOOD
    assert band("rework_rate", 0.04) == FAIR
    assert band("rework_rate", 0.5) == POOR
    assert band("closure_rate", None) is None
    assert band("mean_hours_to_close", 3.0) is None  # no thresholds
    settings.WEIGE_KPI_BANDS = {"closure_rate": {"good": 0.99, "fair": 0.95}}
    assert band("closure_rate", 0.97) == FAIR
    assert band("rework_rate", 0.5) is None


def test_a_unit_with_fifty_children_needs_no_query_per_child(
    chief, data, django_assert_max_num_queries
):
    community = data["community"]
    grids = [
        Unit.objects.create(
            kind="grid",
            code=f"{community.code}{n:03d}",
            name=f"网格{n}",
            parent=community,
            path=f"{community.path}{community.code}{n:03d}/",
        )
        for n in range(3, 51)
    ]
    for grid in grids:
        make(grid, "closed", [("accept", 2), ("handle", 3), ("check", 3), ("close", 4)], 5, 4)
    with django_assert_max_num_queries(20):
        response = chief.get(f"/incidents/kpis?unit={community.code}&{JUNE}")
    assert len(response.context["rows"]) == 51
    k = rows_of(response)
    assert k[grids[-1].code].closed == 1 and k[community.code].reports == 5 + len(grids)


def test_a_login_without_a_unit_sees_no_rows_and_is_told_why(client, django_user_model, data):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw-123456"))
    response = client.get(f"/incidents/kpis?{JUNE}")
    assert response.status_code == 200 and response.context["rows"] == []
    assert "You are not assigned to any unit yet" in response.text
    assert client.get(f"/incidents/kpis?unit={data['community'].code}").status_code == 404
