"""Deadline extensions are recorded and move the deadline; the 3× overdue moment is stored."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from grids.models import Role, StaffAssignment, StaffMember
from grids.roles import GRID_CHIEF, GRID_MEMBER
from incidents.models import Category, Incident
from incidents.selectors import filter_incidents
from incidents.services.actions import perform
from incidents.services.extensions import extensions_of, requested
from incidents.services.intake import Report, report_incident
from incidents.workflow import State, TransitionRefused
from incidents.working_time import WorkingCalendar, is_3x_overdue

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)


def login(django_user_model, name, group, unit, role):
    """A user in the workflow group `group`, assigned to `unit` (their scope)."""
    user = django_user_model.objects.create_user(name, password="pw-123456")
    user.groups.add(Group.objects.get(name=group))
    member = StaffMember.objects.create(name=name, user=user)
    StaffAssignment.objects.create(
        member=member, unit=unit, role=role, start=datetime.date(2024, 1, 1)
    )
    return user


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    community = small_territory["community"]
    return (
        login(django_user_model, "chief", GRID_CHIEF, community, Role.GRID_CHIEF),
        login(django_user_model, "member", GRID_MEMBER, community, Role.FULLTIME_MEMBER),
    )


def in_progress(small_territory, people):
    chief, member = people
    manhole = Category.objects.get(code="C0101")  # normal: 8 working hours
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    for action, who in (("accept", chief), ("start", member)):
        # dispatching needs a rule; the plain transition is enough to reach "in progress"
        if action == "start":
            from incidents.services.transitions import transition

            incident = transition(incident, "dispatch", chief)
        incident = perform(incident, action, who)
    assert incident.state == State.IN_PROGRESS
    return incident


def test_the_3x_overdue_moment_is_three_times_the_allowed_working_time(small_territory, seeded):
    manhole = Category.objects.get(code="C0101")
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    # Working days of 7.5 h (08:30–12:00, 13:30–17:30). 8 working hours from Monday 09:00:
    # 7 h on Monday, 1 h on Tuesday → 09:30. 24 h: 7 + 7.5 + 7.5 + 2 → Thursday 10:30.
    assert incident.deadline == datetime.datetime(2025, 6, 10, 9, 30, tzinfo=SH)
    assert incident.overdue_3x_at == datetime.datetime(2025, 6, 12, 10, 30, tzinfo=SH)
    calendar = WorkingCalendar.from_settings()
    just_before = incident.overdue_3x_at - datetime.timedelta(minutes=1)
    assert not is_3x_overdue(MONDAY_9, incident.deadline, just_before, calendar)
    assert is_3x_overdue(MONDAY_9, incident.deadline, incident.overdue_3x_at, calendar)
    # long past: both flags, and the list filters find it
    assert incident.is_overdue and incident.is_3x_overdue
    assert list(filter_incidents(Incident.objects.all(), {"overdue": "3x"})) == [incident]
    assert list(filter_incidents(Incident.objects.all(), {"overdue": "1"})) == [incident]


def test_a_closed_incident_is_neither_overdue_nor_3x(small_territory, seeded):
    manhole = Category.objects.get(code="C0101")
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    Incident.objects.filter(pk=incident.pk).update(state=State.CLOSED)
    incident.refresh_from_db()
    assert not incident.is_overdue and not incident.is_3x_overdue
    assert not filter_incidents(Incident.objects.all(), {"overdue": "3x"}).exists()


def test_a_fresh_incident_is_not_overdue(small_territory, seeded):
    manhole = Category.objects.get(code="C0101")
    incident = report_incident(Report(lon=104.005, lat=30.607, category=manhole, source="patrol"))
    assert incident.deadline > timezone.now()
    assert not incident.is_overdue and not incident.is_3x_overdue


def test_approved_extension_moves_the_deadline_and_is_recorded(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    old = incident.deadline
    incident = perform(
        incident, "request_extension", member, amount=2, unit="days", note="需要协调物业"
    )
    assert incident.state == State.EXTENSION_REQUESTED
    assert requested(incident) == {"amount": "2", "unit": "days"}
    assert incident.deadline == old  # asking does not move it
    incident = perform(incident, "approve_extension", chief)
    assert incident.state == State.IN_PROGRESS
    # Tuesday 09:30 + 2 working days → Thursday 17:30 (close of business)
    assert incident.deadline == datetime.datetime(2025, 6, 12, 17, 30, tzinfo=SH)
    (ext,) = extensions_of(incident)
    assert (ext["old"], ext["new"], ext["amount"], ext["unit"], ext["by"]) == (
        old,
        incident.deadline,
        "2",
        "days",
        chief,
    )
    calendar = WorkingCalendar.from_settings()
    allowed = calendar.working_hours_between(MONDAY_9, incident.deadline)
    assert incident.overdue_3x_at == calendar.add_working_hours(MONDAY_9, 3 * allowed)


def test_the_supervisor_may_grant_a_different_amount(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    incident = perform(incident, "request_extension", member, amount=3, unit="days", note="x")
    incident = perform(incident, "approve_extension", chief, amount=4, unit="hours")
    # Tuesday 09:30 + 4 working hours: 2.5 h to noon, 1.5 h after lunch → 15:00
    assert incident.deadline == datetime.datetime(2025, 6, 10, 15, 0, tzinfo=SH)
    entry = incident.timeline.get(action="approve_extension")
    assert entry.data["amount"] == "4" and entry.data["unit"] == "hours"


def test_a_refused_extension_keeps_the_deadline(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    old = incident.deadline
    incident = perform(incident, "request_extension", member, amount=1, unit="days", note="x")
    incident = perform(incident, "refuse_extension", chief, note="可按期完成")
    assert incident.state == State.IN_PROGRESS and incident.deadline == old
    assert extensions_of(incident) == []


@pytest.mark.parametrize(
    ("amount", "unit", "message"),
    [
        (0, "days", "more than 0"),
        (-1, "hours", "more than 0"),
        ("abc", "days", "not a number"),
        (1.5, "days", "whole number"),
        (1, "weeks", "must be one of"),
    ],
)
def test_bad_extension_requests_are_refused(small_territory, people, amount, unit, message):
    chief, member = people
    incident = in_progress(small_territory, people)
    with pytest.raises(TransitionRefused, match=message):
        perform(incident, "request_extension", member, amount=amount, unit=unit, note="x")
    incident.refresh_from_db()
    assert incident.state == State.IN_PROGRESS


def test_an_extension_request_needs_a_reason(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    with pytest.raises(TransitionRefused, match="needs a reason"):
        perform(incident, "request_extension", member, amount=1, unit="days", note="")


def test_a_grid_member_cannot_approve(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    incident = perform(incident, "request_extension", member, amount=1, unit="days", note="x")
    old = incident.deadline
    with pytest.raises(TransitionRefused, match="roles"):
        perform(incident, "approve_extension", member)
    incident.refresh_from_db()
    assert incident.deadline == old and incident.state == State.EXTENSION_REQUESTED


def test_two_approvals_from_the_same_version_extend_once(small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    incident = perform(incident, "request_extension", member, amount=1, unit="days", note="x")
    stale = Incident.objects.get(pk=incident.pk)
    perform(incident, "approve_extension", chief)
    with pytest.raises(TransitionRefused, match="changed by someone else"):
        perform(stale, "approve_extension", chief)
    assert len(extensions_of(incident)) == 1


def test_the_api_takes_the_amount_and_unit(client, small_territory, people):
    chief, member = people
    incident = in_progress(small_territory, people)
    client.force_login(member)
    url = f"/api/incidents/{incident.pk}/transition"
    body = {"action": "request_extension", "note": "x", "lock_version": incident.lock_version}
    answer = client.post(url, {**body, "amount": "1", "unit": "weeks"}, "application/json")
    assert answer.status_code == 400 and "unit" in answer.json()["error"]
    answer = client.post(url, {**body, "amount": "1", "unit": "days"}, "application/json")
    assert answer.status_code == 200, answer.json()
    client.force_login(chief)
    version = answer.json()["properties"]["lock_version"]
    answer = client.post(
        url, {"action": "approve_extension", "lock_version": version}, "application/json"
    )
    assert answer.status_code == 200, answer.json()
    assert answer.json()["properties"]["deadline"].startswith("2025-06-11T17:30")
