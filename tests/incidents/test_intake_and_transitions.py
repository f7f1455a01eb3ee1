import datetime
import threading
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from gis.crs import wgs84_to_gcj02
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER
from incidents.models import (
    Category,
    Incident,
    IncidentDeletionRefused,
    TimelineEntry,
    mask_phone,
)
from incidents.services.intake import IntakeError, Report, report_incident
from incidents.services.transitions import transition
from incidents.workflow import State, TransitionRefused

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)


def login(django_user_model, name, group):
    user = django_user_model.objects.create_user(name, password="pw-123456")
    user.groups.add(Group.objects.get(name=group))
    return user


def test_report_is_geotagged_and_gets_its_working_time_deadline(small_territory, manhole):
    incident = report_incident(
        Report(
            lon=104.005,
            lat=30.607,
            category=manhole,
            source="patrol",
            reported_at=MONDAY_9,
            urgent=True,
            reporter_phone="13812345678",
        )
    )
    t = small_territory
    assert (incident.street, incident.community, incident.grid, incident.unit) == (
        t["street"],
        t["community"],
        t["grid1"],
        t["micro11"],
    )
    assert incident.boundary_version == t["micro11"].current_version()
    assert incident.deadline == datetime.datetime(2025, 6, 9, 11, 0, tzinfo=SH)
    assert incident.state == State.REPORTED and not incident.unassigned
    assert incident.masked_phone == "138****5678"
    (entry,) = incident.timeline.all()
    assert entry.action == "report" and entry.to_state == State.REPORTED


def test_gcj02_report_is_converted_and_the_original_kept(small_territory, manhole):
    lon, lat = wgs84_to_gcj02(104.005, 30.607)
    incident = report_incident(
        Report(
            lon=lon, lat=lat, crs="gcj02", category=manhole, source="resident", reported_at=MONDAY_9
        )
    )
    assert incident.unit == small_territory["micro11"]
    assert (incident.input_lon, incident.input_lat, incident.input_crs) == (lon, lat, "gcj02")
    assert abs(incident.location.x - 104.005) < 1e-6


def test_outside_every_unit_is_accepted_as_unassigned(small_territory, manhole):
    incident = report_incident(
        Report(lon=121.0, lat=31.0, category=manhole, source="police", reported_at=MONDAY_9)
    )
    assert incident.unassigned and incident.unit is None


def test_near_a_boundary_keeps_both_candidates(small_territory, manhole):
    incident = report_incident(
        Report(
            lon=104.01 - 2e-5, lat=30.603, category=manhole, source="patrol", reported_at=MONDAY_9
        )
    )
    assert incident.near_boundary
    assert small_territory["grid2"].code in {c["code"] for c in incident.boundary_candidates}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lon": 200.0}, "lon=200.0 is out of range"),
        ({"lat": float("nan")}, "lat must be a finite number"),
        ({"crs": "EPSG:3857"}, "crs 'EPSG:3857' is not one of"),
        ({"source": "twitter"}, "source 'twitter' is not one of"),
        ({"reported_at": datetime.datetime(2025, 6, 9, 9, 0)}, "time zone"),
    ],
)
def test_bad_reports_are_refused_with_the_field(small_territory, manhole, changes, message):
    values = {
        "lon": 104.005,
        "lat": 30.607,
        "category": manhole,
        "source": "patrol",
        "reported_at": MONDAY_9,
        **changes,
    }
    with pytest.raises(IntakeError, match=message):
        report_incident(Report(**values))
    assert not Incident.objects.exists()


def test_external_ids_are_unique(small_territory, manhole):
    report = Report(
        lon=104.005,
        lat=30.607,
        category=manhole,
        source="hotline_12345",
        reported_at=MONDAY_9,
        external_id="12345-0001",
    )
    report_incident(report)
    with pytest.raises(IntakeError, match="12345-0001 already exists"):
        report_incident(report)
    assert Incident.objects.count() == 1


def test_incidents_and_timelines_are_never_deleted(small_territory, manhole):
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    with pytest.raises(IncidentDeletionRefused):
        incident.delete()
    with pytest.raises(IncidentDeletionRefused):
        Incident.objects.all().delete()
    entry = incident.timeline.first()
    entry.note = "rewritten"
    with pytest.raises(IncidentDeletionRefused):
        entry.save()


def test_a_transition_is_checked_and_recorded(small_territory, manhole, django_user_model):
    member = login(django_user_model, "m", GRID_MEMBER)
    chief = login(django_user_model, "c", GRID_CHIEF)
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="resident", reported_at=MONDAY_9)
    )
    incident = transition(incident, "verify", member)
    incident = transition(incident, "accept", chief, note="立案")
    assert incident.state == State.ACCEPTED and incident.lock_version == 2
    entries = list(incident.timeline.values_list("action", "from_state", "to_state"))
    assert entries[1:] == [("verify", "reported", "verified"), ("accept", "verified", "accepted")]
    with pytest.raises(TransitionRefused, match="roles"):
        transition(incident, "park", member, note="x")
    assert TimelineEntry.objects.filter(incident=incident).count() == 3


def test_a_stale_transition_loses(small_territory, manhole, django_user_model):
    chief = login(django_user_model, "c", GRID_CHIEF)
    admin = login(django_user_model, "a", DISTRICT_ADMIN)
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    seen_by_chief = Incident.objects.get(pk=incident.pk)
    seen_by_admin = Incident.objects.get(pk=incident.pk)
    transition(seen_by_admin, "void", admin, note="无效")
    with pytest.raises(TransitionRefused, match="changed by someone else"):
        transition(seen_by_chief, "accept", chief)
    assert Incident.objects.get(pk=incident.pk).state == State.VOID


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_cannot_both_win(small_territory, manhole, django_user_model):
    chief = login(django_user_model, "c", GRID_CHIEF)
    admin = login(django_user_model, "a", DISTRICT_ADMIN)
    incident = report_incident(
        Report(lon=104.005, lat=30.607, category=manhole, source="patrol", reported_at=MONDAY_9)
    )
    barrier = threading.Barrier(2)
    outcomes = []

    def act(user, action, note):
        seen = Incident.objects.get(pk=incident.pk)
        barrier.wait()
        try:
            transition(seen, action, user, note=note)
            outcomes.append(action)
        except TransitionRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=act, args=(chief, "accept", "")),
        threading.Thread(target=act, args=(admin, "void", "无效")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and outcomes.count("refused") == 1
    final = Incident.objects.get(pk=incident.pk)
    assert final.lock_version == 1
    assert final.timeline.count() == 2


def test_phone_masking_hides_at_least_four_digits():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("028-87654321") == "028*****4321"
    assert mask_phone("87654321") == "****4321"
    assert mask_phone("028-8888") == "****8888"
    assert mask_phone("8765432") == "*******"
    assert mask_phone("12345") == "*****"
    assert mask_phone("") == ""
    for phone in ("13812345678", "028-87654321", "87654321", "8765432", "12345"):
        assert mask_phone(phone).count("*") >= min(4, len(phone))


def test_half_a_working_day_is_half_the_working_hours_of_a_day(small_territory, manhole):
    litter = Category.objects.get(code="E0102")  # urgent: 0.5 working days
    incident = report_incident(
        Report(
            lon=104.005,
            lat=30.607,
            category=litter,
            source="patrol",
            reported_at=MONDAY_9,
            urgent=True,
        )
    )
    # 3.75 working hours from Monday 09:00: 3 h to noon, 0.75 h after 13:30 → 14:15
    assert incident.deadline == datetime.datetime(2025, 6, 9, 14, 15, tzinfo=SH)
