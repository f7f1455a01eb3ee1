"""The police liaison page: who may open it, what it lists and in which order, counts per grid."""

import datetime
import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from grids.models import Role, StaffAssignment, StaffMember
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, POLICE_LIAISON
from incidents.models import Category, Incident
from incidents.selectors import incidents_for, police_and_safety
from incidents.services.intake import Report, report_incident
from incidents.views.police import counts_per_grid
from incidents.workflow import State
from tests.conftest import rect

pytestmark = pytest.mark.django_db

OTHER_COMMUNITY = "510199001002"
WEST = (104.005, 30.607)  # grid 1, micro-grid 1
EAST = (104.015, 30.602)  # grid 2, micro-grid 2
OTHER = (104.03, 30.605)  # the other community's grid
SUSPICIOUS = "E0801"  # 治安隐患 / 可疑人员活动, police relevant
FIRE_EXIT = "E0901"  # 安全隐患 / 消防通道堵塞, not police relevant: a safety hazard
PARKING = "E0504"  # 街面秩序 / 机动车违章停放, police relevant
MANHOLE = "C0101"  # neither


def login(django_user_model, name, unit, group=None):
    user = django_user_model.objects.create_user(name, password="pw-123456")
    if group:
        user.groups.add(Group.objects.get(name=group))
    member = StaffMember.objects.create(name=name, user=user)
    StaffAssignment.objects.create(
        member=member, unit=unit, role=Role.GRID_CHIEF, start=datetime.date(2024, 1, 1)
    )
    return user


def report(where, code, ago: datetime.timedelta, **changes) -> Incident:
    """An incident reported `ago` before now; `changes` are set on it afterwards."""
    lon, lat = where
    incident = report_incident(
        Report(
            lon=lon,
            lat=lat,
            category=Category.objects.get(code=code),
            source="patrol",
            reported_at=timezone.now() - ago,
        )
    )
    if changes:
        Incident.objects.filter(pk=incident.pk).update(**changes)
        incident.refresh_from_db()
    return incident


def numbers(response) -> list[int]:
    """The incident numbers in the list, in order."""
    return [int(n) for n in re.findall(r'<td><a href="/incidents/(\d+)/">#', response.text)]


@pytest.fixture
def territory(small_territory, make_unit, seeded):
    units = dict(small_territory)
    units["other"] = make_unit(
        "community",
        OTHER_COMMUNITY,
        rect(104.02, 30.60, 104.04, 30.61),
        parent=small_territory["street"],
        name="河西社区",
    )
    units["other_grid"] = make_unit(
        "grid",
        f"{OTHER_COMMUNITY}001",
        rect(104.02, 30.60, 104.04, 30.61),
        parent=units["other"],
        name="河西第1网格",
    )
    return units


@pytest.fixture
def officer(django_user_model, territory):
    return login(django_user_model, "police", territory["community"], POLICE_LIAISON)


@pytest.fixture
def liaison(client, officer):
    client.force_login(officer)
    return client


DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def test_the_liaison_page_lists_police_relevant_incidents_and_hazards_of_the_beat_only(
    liaison, territory
):
    suspicious = report(WEST, SUSPICIOUS, HOUR)
    fire_exit = report(EAST, FIRE_EXIT, 2 * HOUR)
    parking = report(WEST, PARKING, 3 * HOUR)
    report(WEST, MANHOLE, HOUR)  # not for the police
    report(OTHER, SUSPICIOUS, HOUR)  # another community: outside the beat
    response = liaison.get("/incidents/police")
    assert response.status_code == 200
    assert numbers(response) == [suspicious.pk, fire_exit.pk, parking.pk]
    assert f'href="/incidents/{suspicious.pk}/"' in response.text


def test_the_police_set_is_police_relevant_categories_plus_classes_08_and_09(territory):
    for code, expected in ((SUSPICIOUS, True), (FIRE_EXIT, True), (PARKING, True)):
        incident = report(WEST, code, HOUR)
        assert police_and_safety(Incident.objects.filter(pk=incident.pk)).exists() is expected
    manhole = report(WEST, MANHOLE, HOUR)
    assert not police_and_safety(Incident.objects.filter(pk=manhole.pk)).exists()
    # every seeded category of event classes 08 and 09 is in, whatever its police flag
    hazards = Category.objects.filter(family="event", major__in=("08", "09"))
    assert hazards.filter(police_relevant=False).exists()
    for category in hazards:
        incident = report(WEST, category.code, HOUR)
        assert police_and_safety(Incident.objects.filter(pk=incident.pk)).exists()


def test_open_overdue_incidents_come_first_3x_overdue_before_overdue(liaison, territory):
    now = timezone.now()
    fresh = report(WEST, SUSPICIOUS, DAY, deadline=now + DAY, overdue_3x_at=now + 3 * DAY)
    newest = report(WEST, SUSPICIOUS, 2 * HOUR, deadline=now + DAY, overdue_3x_at=now + 3 * DAY)
    late = report(WEST, FIRE_EXIT, 3 * DAY, deadline=now - DAY, overdue_3x_at=now + DAY)
    late_3x = report(EAST, PARKING, 10 * DAY, deadline=now - 8 * DAY, overdue_3x_at=now - DAY)
    done = report(
        WEST, SUSPICIOUS, 20 * DAY, deadline=now - 19 * DAY, state=State.CLOSED, closed_at=now
    )
    # a closed incident long past its deadline is not overdue: it sorts by date only
    newer_done = report(
        WEST, SUSPICIOUS, 12 * HOUR, deadline=now - HOUR, state=State.CLOSED, closed_at=now
    )
    assert numbers(liaison.get("/incidents/police")) == [late_3x.pk, late.pk, newest.pk, fresh.pk]
    assert numbers(liaison.get("/incidents/police?show=all")) == [
        late_3x.pk,
        late.pk,
        newest.pk,
        newer_done.pk,
        fresh.pk,
        done.pk,
    ]
    page = liaison.get("/incidents/police").text
    assert "badge-3x" in page and "badge-overdue" in page


def test_the_period_filter_and_its_errors(liaison, territory):
    today = timezone.localdate()
    recent = report(WEST, SUSPICIOUS, HOUR)
    report(WEST, SUSPICIOUS, 40 * DAY)
    since = (today - datetime.timedelta(days=6)).isoformat()
    assert numbers(liaison.get(f"/incidents/police?from={since}")) == [recent.pk]
    response = liaison.get("/incidents/police?from=yesterday")
    assert response.status_code == 400
    assert "from=&#x27;yesterday&#x27; is not a date" in response.text
    assert numbers(response) == []
    assert liaison.get("/incidents/police?show=some").status_code == 400


def test_pages_of_fifty(liaison, territory):
    for n in range(51):
        report(WEST, SUSPICIOUS, (n + 1) * HOUR)
    first = liaison.get("/incidents/police")
    second = liaison.get("/incidents/police?page=2")
    assert len(numbers(first)) == 50 and len(numbers(second)) == 1
    assert "page=2" in first.text


def test_counts_per_grid_for_the_last_7_and_30_days_with_open_and_overdue(liaison, territory):
    now = timezone.now()
    # grid 1: two this week (one overdue), one three weeks ago (closed), one 60 days ago open
    # and 3× overdue; a manhole (not for the police) this week
    report(WEST, SUSPICIOUS, HOUR, deadline=now + DAY)
    report(WEST, FIRE_EXIT, 2 * DAY, deadline=now - HOUR, overdue_3x_at=now + DAY)
    report(WEST, PARKING, 21 * DAY, state=State.CLOSED, closed_at=now)
    report(WEST, SUSPICIOUS, 60 * DAY, deadline=now - 50 * DAY, overdue_3x_at=now - 40 * DAY)
    report(WEST, MANHOLE, HOUR)
    # grid 2: one 10 days ago, voided; one 40 days ago, closed (in no count)
    report(EAST, PARKING, 10 * DAY, state=State.VOID, closed_at=now)
    report(EAST, PARKING, 40 * DAY, state=State.CLOSED, closed_at=now)
    # the other community: never shown
    report(OTHER, SUSPICIOUS, HOUR)
    response = liaison.get("/incidents/police")
    rows = {r["code"]: r for r in response.context["grids"]}
    grid1, grid2 = territory["grid1"].code, territory["grid2"].code
    assert set(rows) == {grid1, grid2}
    assert {k: rows[grid1][k] for k in ("last_7_days", "last_30_days")} == {
        "last_7_days": 2,
        "last_30_days": 3,
    }
    assert (rows[grid1]["open_count"], rows[grid1]["overdue"], rows[grid1]["overdue_3x"]) == (
        3,
        2,
        1,
    )
    assert (rows[grid2]["last_7_days"], rows[grid2]["last_30_days"]) == (0, 1)
    assert (rows[grid2]["open_count"], rows[grid2]["overdue"]) == (0, 0)
    assert response.context["totals"]["last_30_days"] == 4
    assert f'href="/units/{grid1}/"' in response.text
    assert "河西" not in response.text


def test_counts_per_grid_take_one_query(officer, django_assert_num_queries):
    report(WEST, SUSPICIOUS, HOUR)
    report(EAST, SUSPICIOUS, HOUR)
    scoped = police_and_safety(incidents_for(officer))
    with django_assert_num_queries(1):
        rows = counts_per_grid(scoped, timezone.now())
    assert [r["last_7_days"] for r in rows] == [1, 1]


def test_district_admins_and_superusers_see_the_page_others_get_403(
    client, django_user_model, territory
):
    report(OTHER, SUSPICIOUS, HOUR)
    admin = login(django_user_model, "admin", territory["district"], DISTRICT_ADMIN)
    client.force_login(admin)
    response = client.get(reverse("police"))
    assert response.status_code == 200 and len(numbers(response)) == 1
    chief = login(django_user_model, "chief", territory["community"], GRID_CHIEF)
    client.force_login(chief)
    refused = client.get(reverse("police"))
    assert refused.status_code == 403
    # the app's page: why, in the user's language, with the navigation and a way back
    assert "This page is for police liaisons and district administrators." in refused.text
    assert 'class="topbar"' in refused.text and 'href="/"' in refused.text
    root = django_user_model.objects.create_superuser("root", password="pw-123456")
    client.force_login(root)
    assert client.get(reverse("police")).status_code == 200
    client.logout()
    assert client.get(reverse("police")).status_code == 302
