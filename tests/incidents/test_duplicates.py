"""Duplicate suggestions and marking (issue 3, point 8), on SpatiaLite and PostGIS."""

import datetime
import math
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group

from grids.roles import GRID_CHIEF, GRID_MEMBER, PLANNER
from incidents.models import Category, Incident
from incidents.services.duplicates import (
    bounding_box,
    distance_m,
    mark_duplicate,
    suggest_duplicates,
    suggest_for,
)
from incidents.services.intake import Report, report_incident
from incidents.services.transitions import transition
from incidents.workflow import State, TransitionRefused

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
LON, LAT = 104.005, 30.607
M_PER_DEG_LAT = 110_850.0  # near 30.6° N, close enough for placing test points


@pytest.fixture
def other_category(manhole):
    return Category.objects.exclude(pk=manhole.pk).filter(active=True).first()


def login(django_user_model, name, group):
    user = django_user_model.objects.create_user(name, password="pw-123456")
    user.groups.add(Group.objects.get(name=group))
    return user


def north(metres: float) -> float:
    """Latitude `metres` north of LAT."""
    return LAT + metres / M_PER_DEG_LAT


def east(metres: float) -> float:
    """Longitude `metres` east of LON."""
    return LON + metres / (111_320.0 * math.cos(math.radians(LAT)))


def report(category, lon=LON, lat=LAT, at=MONDAY_9):
    return report_incident(
        Report(lon=lon, lat=lat, category=category, source="patrol", reported_at=at)
    )


def suggest(category, lon=LON, lat=LAT, at=MONDAY_9, **kw):
    return suggest_duplicates(lon=lon, lat=lat, category=category, reported_at=at, **kw)


def test_seeded_manhole_radius_is_30_m(manhole):
    assert manhole.duplicate_radius_m == 30


def test_helpers_measure_metres():
    assert distance_m(LON, LAT, LON, north(20)) == pytest.approx(20, abs=0.2)
    assert distance_m(LON, LAT, east(20), LAT) == pytest.approx(20, abs=0.2)
    x0, y0, x1, y1 = bounding_box(LON, LAT, 30).extent
    assert distance_m(LON, LAT, LON, y1) > 30 and distance_m(LON, LAT, x1, LAT) > 30


def test_same_category_within_radius_and_window_nearest_first(small_territory, manhole):
    far = report(manhole, lat=north(25), at=MONDAY_9 - datetime.timedelta(days=6))
    near = report(manhole, lon=east(10), at=MONDAY_9 + datetime.timedelta(days=2))
    found = suggest(manhole)
    assert [s.incident for s in found] == [near, far]
    assert found[0].distance_m == pytest.approx(10, abs=0.2)
    assert found[1].distance_m == pytest.approx(25, abs=0.3)
    assert found[0].distance_m == round(found[0].distance_m, 1)
    assert found[0].age == -datetime.timedelta(days=2)
    assert found[1].age == datetime.timedelta(days=6)
    assert [s.incident for s in suggest(manhole, limit=1)] == [near]


def test_outside_radius_is_not_suggested(small_territory, manhole):
    report(manhole, lat=north(45))  # 1.5 × 30 m
    report(manhole, lon=east(45))
    report(manhole, lon=east(22), lat=north(22))  # ~31 m: inside the box, outside the circle
    assert suggest(manhole) == []


def test_other_category_is_not_suggested(small_territory, manhole, other_category):
    report(other_category)
    assert suggest(manhole) == []
    assert [s.distance_m for s in suggest(other_category)] == [0.0]


def test_closed_and_void_are_not_suggested(small_territory, manhole, django_user_model):
    chief = login(django_user_model, "chief", GRID_CHIEF)
    voided = report(manhole)
    transition(voided, "void", chief, note="prank call")
    closed = report(manhole, lon=east(5))
    closed = transition(closed, "self_resolve", chief)
    transition(closed, "close", chief)
    assert suggest(manhole) == []


def test_outside_the_time_window_is_not_suggested(small_territory, manhole, settings):
    assert settings.WEIGE_DUPLICATE_WINDOW_DAYS == 7
    report(manhole, at=MONDAY_9 - datetime.timedelta(days=7, minutes=1))
    report(manhole, at=MONDAY_9 + datetime.timedelta(days=7, minutes=1))
    assert suggest(manhole) == []
    settings.WEIGE_DUPLICATE_WINDOW_DAYS = 8
    assert len(suggest(manhole)) == 2


def test_the_incident_itself_is_excluded(small_territory, manhole):
    first = report(manhole)
    second = report(manhole, lat=north(5))
    assert [s.incident for s in suggest_for(first)] == [second]
    assert [s.incident for s in suggest_for(second)] == [first]
    assert [s.incident for s in suggest(manhole, exclude_id=first.pk)] == [second]


def test_mark_duplicate_links_both_ways_and_closes(small_territory, manhole, django_user_model):
    member = login(django_user_model, "member", GRID_MEMBER)
    original = report(manhole)
    dup = report(manhole, lat=north(5))
    dup = mark_duplicate(dup, original, member, note="same manhole")
    assert dup.state == State.DUPLICATE and dup.closed_at is not None
    assert dup.duplicate_of == original
    assert list(original.duplicates.all()) == [dup]
    last = dup.timeline.last()
    assert (last.action, last.to_state, last.note) == (
        "mark_duplicate",
        "duplicate",
        "same manhole",
    )
    assert last.data == {"duplicate_of": original.pk}
    linked = original.timeline.last()
    assert linked.action == "duplicate_linked" and linked.data == {"duplicate": dup.pk}
    assert linked.note == f"#{dup.pk} was marked as a duplicate of this incident"
    assert linked.actor == member
    original.refresh_from_db()
    assert original.state == State.REPORTED and original.closed_at is None
    assert suggest_for(original) == []


def test_default_reason_names_the_original(small_territory, manhole, django_user_model):
    member = login(django_user_model, "member", GRID_MEMBER)
    original, dup = report(manhole), report(manhole)
    dup = mark_duplicate(dup, original, member)
    assert dup.timeline.last().note == f"duplicate of #{original.pk}"


def test_self_duplicate_is_refused(small_territory, manhole, django_user_model):
    member = login(django_user_model, "member", GRID_MEMBER)
    incident = report(manhole)
    with pytest.raises(TransitionRefused, match="cannot be a duplicate of itself"):
        mark_duplicate(incident, incident, member)
    incident.refresh_from_db()
    assert incident.state == State.REPORTED and incident.duplicate_of is None


def test_duplicate_of_a_duplicate_points_to_the_root(small_territory, manhole, django_user_model):
    member = login(django_user_model, "member", GRID_MEMBER)
    root, first, second = report(manhole), report(manhole), report(manhole)
    first = mark_duplicate(first, root, member)
    second = mark_duplicate(second, first, member)
    assert second.duplicate_of == root and second.state == State.DUPLICATE
    assert set(root.duplicates.all()) == {first, second}
    assert second.timeline.last().data == {"duplicate_of": root.pk}


def test_closed_original_is_refused(small_territory, manhole, django_user_model):
    chief = login(django_user_model, "chief", GRID_CHIEF)
    original, dup = report(manhole), report(manhole)
    transition(original, "void", chief, note="wrong place")
    with pytest.raises(TransitionRefused, match=f"#{original.pk} is void"):
        mark_duplicate(dup, original, chief)
    dup.refresh_from_db()
    assert dup.state == State.REPORTED and dup.duplicate_of is None


def test_role_that_may_not_mark_duplicates_is_refused(small_territory, manhole, django_user_model):
    planner = login(django_user_model, "planner", PLANNER)
    original, dup = report(manhole), report(manhole)
    with pytest.raises(TransitionRefused, match="needs one of these roles"):
        mark_duplicate(dup, original, planner)
    dup.refresh_from_db()
    assert dup.state == State.REPORTED and dup.duplicate_of is None
    assert not original.timeline.filter(action="duplicate_linked").exists()
    assert Incident.objects.filter(duplicate_of__isnull=False).count() == 0


def test_already_closed_duplicate_cannot_be_marked_again(
    small_territory, manhole, django_user_model
):
    member = login(django_user_model, "member", GRID_MEMBER)
    a, b, c = report(manhole), report(manhole), report(manhole)
    a = mark_duplicate(a, b, member)
    with pytest.raises(TransitionRefused, match="cannot mark as duplicate"):
        mark_duplicate(a, c, member)
    a.refresh_from_db()
    assert a.duplicate_of == b


def test_cycle_through_a_duplicate_is_refused(small_territory, manhole, django_user_model):
    member = login(django_user_model, "member", GRID_MEMBER)
    a, b = report(manhole), report(manhole)
    b = mark_duplicate(b, a, member)
    with pytest.raises(TransitionRefused, match="cannot be a duplicate of itself"):
        mark_duplicate(a, b, member)
    a.refresh_from_db()
    assert a.state == State.REPORTED and a.duplicate_of is None
