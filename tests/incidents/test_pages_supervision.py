"""The supervision (督办) page: overdue counts per unit, the most overdue incidents, scope."""

import csv
import datetime
import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import Category, Incident
from incidents.selectors import incidents_for, overdue_by_unit
from incidents.services.intake import Report, report_incident
from incidents.workflow import State
from incidents.working_time import WorkingCalendar
from tests.conftest import rect

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
WEST = (104.005, 30.607)  # grid 1
EAST = (104.015, 30.602)  # grid 2
OTHER = (104.03, 30.605)  # the other community


def report(where, reported_at=None) -> Incident:
    lon, lat = where
    return report_incident(
        Report(
            lon=lon,
            lat=lat,
            category=Category.objects.get(code="C0101"),
            source="patrol",
            reported_at=reported_at or timezone.now(),
        )
    )


def overdue_not_3x(incident) -> Incident:
    now = timezone.now()
    Incident.objects.filter(pk=incident.pk).update(
        deadline=now - datetime.timedelta(hours=2), overdue_3x_at=now + datetime.timedelta(days=2)
    )
    incident.refresh_from_db()
    return incident


@pytest.fixture
def territory(small_territory, make_unit, seeded):
    units = dict(small_territory)
    units["other"] = make_unit(
        "community",
        "510199001002",
        rect(104.02, 30.60, 104.04, 30.61),
        parent=small_territory["street"],
        name="河畔社区",
    )
    return units


@pytest.fixture
def chief(client, territory, user_in):
    user = user_in(territory["community"], "grid_chief", username="garden")
    client.force_login(user)
    return user


@pytest.fixture
def cases(territory):
    late_west = report(WEST, MONDAY_9)  # 3× overdue, oldest deadline
    late_east = report(EAST, datetime.datetime(2025, 7, 1, 9, 0, tzinfo=SH))  # 3×, later
    due_east = overdue_not_3x(report(EAST))
    fresh_west = report(WEST)
    closed_east = report(EAST, MONDAY_9)
    Incident.objects.filter(pk=closed_east.pk).update(state=State.CLOSED)
    elsewhere = report(OTHER, MONDAY_9)
    return {
        "late_west": late_west,
        "late_east": late_east,
        "due_east": due_east,
        "fresh_west": fresh_west,
        "closed_east": closed_east,
        "elsewhere": elsewhere,
    }


def table(response) -> list[tuple[str, str, str]]:
    """(unit name, overdue, 3× overdue) rows of the units table."""
    body = re.search(r'<table class="supervision-units">(.*?)</table>', response.text, re.S)
    rows = re.findall(
        r"<tr>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>\s*<td>(?:<a[^>]*>)?(\d+)(?:</a>)?</td>"
        r"\s*<td>(?:<a[^>]*>)?(\d+)(?:</a>)?</td>",
        body.group(1),
    )
    return [(name, int(overdue), int(x3)) for name, overdue, x3 in rows]


def numbers(response) -> list[int]:
    return [int(n) for n in re.findall(r'<td><a href="/incidents/(\d+)/">#', response.text)]


def test_counts_per_grid_of_open_overdue_incidents_in_scope(client, chief, territory, cases):
    response = client.get("/incidents/supervision", {"level": "grid"})
    assert response.status_code == 200
    # most 3× overdue first, then most overdue; closed and out-of-scope incidents not counted
    assert table(response) == [("第2网格", 2, 1), ("第1网格", 1, 1)]


def test_levels_switch_between_street_community_and_grid(client, chief, territory, cases):
    assert table(client.get("/incidents/supervision", {"level": "community"})) == [
        ("花园社区", 3, 2)
    ]
    assert table(client.get("/incidents/supervision", {"level": "street"})) == [("春熙街道", 3, 2)]


def test_a_community_user_starts_at_grid_level(client, chief, cases):
    response = client.get("/incidents/supervision")
    assert response.context["level"] == "grid"
    assert [name for name, *_counts in table(response)] == ["第2网格", "第1网格"]


def test_a_district_user_sees_every_community(client, territory, user_in, cases):
    client.force_login(user_in(territory["district"], "district_admin", username="district"))
    response = client.get("/incidents/supervision", {"level": "community"})
    assert table(response) == [("花园社区", 3, 2), ("河畔社区", 1, 1)]


def test_a_user_of_the_other_community_sees_only_theirs(client, territory, user_in, cases):
    client.force_login(user_in(territory["other"], "grid_chief", username="river"))
    response = client.get("/incidents/supervision", {"level": "community"})
    assert table(response) == [("河畔社区", 1, 1)]
    assert numbers(response) == [cases["elsewhere"].pk]


def test_incidents_without_a_unit_at_the_level_are_counted_without_a_link(
    client, territory, user_in
):
    outside = report((104.1, 30.7), MONDAY_9)  # in the district, in no street
    assert outside.street is None
    client.force_login(user_in(territory["district"], "district_admin", username="district"))
    response = client.get("/incidents/supervision", {"level": "street"})
    assert table(response) == [("no unit at this level", 1, 1)]
    assert "/incidents/?unit=" not in response.text
    assert numbers(response) == [outside.pk]


def test_units_with_nothing_overdue_are_left_out(client, chief, territory):
    report(WEST)  # grid 1: fresh only
    overdue_not_3x(report(EAST))
    assert table(client.get("/incidents/supervision", {"level": "grid"})) == [("第2网格", 1, 0)]


def test_counts_link_to_the_list_filtered_the_same_way(client, chief, territory, cases):
    page = client.get("/incidents/supervision", {"level": "grid"}).text
    grid2 = territory["grid2"].code
    for overdue, expected in (("1", 2), ("3x", 1)):
        link = f'href="/incidents/?unit={grid2}&amp;overdue={overdue}"'
        assert link in page
        listed = client.get("/incidents/", {"unit": grid2, "overdue": overdue})
        assert len(numbers(listed)) == expected


def test_overdue_incidents_come_3x_first_then_by_deadline(client, chief, cases):
    response = client.get("/incidents/supervision")
    assert numbers(response) == [
        cases["late_west"].pk,
        cases["late_east"].pk,
        cases["due_east"].pk,
    ]


def test_rows_show_working_hours_past_the_deadline(client, chief, cases):
    response = client.get("/incidents/supervision")
    calendar = WorkingCalendar.from_settings()
    now = timezone.now()
    for row in response.context["rows"]:
        expected = calendar.working_hours_between(row.deadline, now)
        assert row.hours_overdue == pytest.approx(expected, abs=0.05)
    due = next(r for r in response.context["rows"] if r.pk == cases["due_east"].pk)
    # at most the wall-clock hours since the deadline (two when the case was made)
    since = (now - due.deadline).total_seconds() / 3600
    assert 0 <= due.hours_overdue <= since


def test_the_table_is_one_query_whatever_the_number_of_units(chief, territory, cases):
    with CaptureQueriesContext(connection) as queries:
        rows = overdue_by_unit(incidents_for(chief), "grid")
    assert len(rows) == 2
    # scope lookups (incidents_for) plus one grouped query for the counts
    counting = [q for q in queries.captured_queries if "GROUP BY" in q["sql"].upper()]
    assert len(counting) == 1


def test_the_page_makes_as_many_queries_for_many_overdue_incidents_as_for_one(
    client, chief, territory, django_assert_max_num_queries
):
    report(WEST, MONDAY_9)
    with CaptureQueriesContext(connection) as one:
        client.get("/incidents/supervision")
    for where in (WEST, EAST) * 10:
        report(where, MONDAY_9)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get("/incidents/supervision")
    assert len(numbers(response)) == 21


def test_the_overdue_incidents_are_paginated(client, chief, territory):
    first = report(WEST, MONDAY_9)
    for _n in range(51):
        first.pk = None
        first.save()
    page1 = client.get("/incidents/supervision", {"level": "community"})
    assert len(numbers(page1)) == 50 and "52 overdue incidents" in page1.text
    assert 'href="?level=community&amp;page=2"' in page1.text
    assert len(numbers(client.get("/incidents/supervision", {"level": "grid", "page": 2}))) == 2


def test_an_unknown_level_is_a_400_with_the_message(client, chief, cases):
    response = client.get("/incidents/supervision", {"level": "province"})
    assert response.status_code == 400
    assert "level=&#x27;province&#x27; is not one of street, community, grid" in response.text


def test_the_table_exports_as_csv(client, chief, territory, cases):
    response = client.get("/incidents/supervision.csv", {"level": "grid"})
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows == [
        ["code", "grid", "overdue", "3× overdue"],
        [territory["grid2"].code, "第2网格", "2", "1"],
        [territory["grid1"].code, "第1网格", "1", "1"],
    ]
    assert client.get("/incidents/supervision.csv", {"level": "x"}).status_code == 400


def test_the_nav_links_to_the_list_and_supervision_pages(client, chief):
    page = client.get("/incidents/supervision").text
    assert 'href="/incidents/"' in page and 'href="/incidents/supervision"' in page
