"""Unit decisions on near-boundary and unassigned incidents (boundary_review)."""

import pytest
from django.contrib.auth.models import Group

from grids.models import Role
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER
from incidents.models import Category, TimelineEntry
from incidents.services.boundary_review import (
    BoundaryReviewRefused,
    assign_unit,
    assignable_options,
    candidate_options,
    confirm_unit,
    move_to_unit,
)
from incidents.services.intake import Report, report_incident
from incidents.services.transitions import transition
from tests.incidents.test_extensions import login

pytestmark = pytest.mark.django_db

# 1 m west of the edge between micro-grids 11 (grid 1) and 21 (grid 2) at lon 104.01.
NEAR_EDGE = (104.00999, 30.607)
# 48 m east of the community (and of micro-grid 21), still inside the street.
OUTSIDE = (104.0205, 30.607)


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
        "member": login(
            django_user_model, "member", GRID_MEMBER, t["community"], Role.FULLTIME_MEMBER
        ),
        "admin": login(
            django_user_model, "admin", DISTRICT_ADMIN, t["district"], Role.DISTRICT_ADMIN
        ),
    }


def report_at(lon, lat, code="C0101"):
    return report_incident(
        Report(lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol")
    )


def test_a_point_by_the_edge_lists_the_neighbour_as_candidate(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    assert incident.near_boundary and incident.unit == small_territory["micro11"]
    assert [o.unit for o in candidate_options(incident)] == [small_territory["micro21"]]


def test_confirming_keeps_the_unit_and_clears_the_flag(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    confirmed = confirm_unit(incident, people["chief"], note="门牌在第1网格")
    assert confirmed.unit == small_territory["micro11"] and not confirmed.near_boundary
    assert confirmed.lock_version == incident.lock_version + 1
    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert entry.action == "unit_confirmed" and entry.actor == people["chief"]
    assert entry.note == "门牌在第1网格"
    assert entry.data["candidates"] == [small_territory["micro21"].code]


def test_moving_to_a_candidate_takes_its_grid_and_records_both_sides(small_territory, people):
    t = small_territory
    incident = report_at(*NEAR_EDGE)
    moved = move_to_unit(incident, t["micro21"], people["admin"])
    assert (moved.unit, moved.grid, moved.community, moved.street) == (
        t["micro21"],
        t["grid2"],
        t["community"],
        t["street"],
    )
    assert moved.boundary_version == t["micro21"].current_version()
    assert not moved.near_boundary and not moved.unassigned
    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert entry.action == "unit_moved"
    assert entry.data["from"]["unit"] == t["micro11"].code
    assert entry.data["to"] == {
        "street": t["street"].code,
        "community": t["community"].code,
        "grid": t["grid2"].code,
        "unit": t["micro21"].code,
    }


def test_a_unit_that_is_not_a_candidate_is_refused(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    with pytest.raises(BoundaryReviewRefused, match="not a candidate"):
        move_to_unit(incident, small_territory["micro12"], people["chief"])
    incident.refresh_from_db()
    assert incident.unit == small_territory["micro11"] and incident.near_boundary
    assert not TimelineEntry.objects.filter(incident=incident, action="unit_moved").exists()


def test_grid_members_cannot_decide_units(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    with pytest.raises(BoundaryReviewRefused, match="needs one of these roles"):
        confirm_unit(incident, people["member"])
    with pytest.raises(BoundaryReviewRefused, match="needs one of these roles"):
        move_to_unit(incident, small_territory["micro21"], people["member"])


def test_a_decision_on_a_stale_version_is_refused(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    seen = incident.lock_version
    transition(incident, "verify", people["member"])
    incident.lock_version = seen
    with pytest.raises(BoundaryReviewRefused, match="changed by someone else"):
        move_to_unit(incident, small_territory["micro21"], people["chief"])
    incident.refresh_from_db()
    assert incident.unit == small_territory["micro11"]


def test_an_incident_away_from_edges_has_nothing_to_confirm(small_territory, people):
    incident = report_at(104.005, 30.607)
    assert not incident.near_boundary
    with pytest.raises(BoundaryReviewRefused, match="not flagged"):
        confirm_unit(incident, people["chief"])


def test_closed_incidents_keep_their_units(small_territory, people):
    incident = report_at(*NEAR_EDGE)
    incident = transition(incident, "void", people["chief"], note="误报")
    with pytest.raises(BoundaryReviewRefused, match="closed"):
        move_to_unit(incident, small_territory["micro21"], people["chief"])


def test_a_district_admin_assigns_an_unassigned_incident_to_a_nearby_microgrid(
    small_territory, people
):
    t = small_territory
    incident = report_at(*OUTSIDE)
    assert incident.unassigned and incident.unit is None
    options = assignable_options(incident, people["admin"])
    assert options[0].unit == t["micro21"] and 40 < options[0].distance_m < 60
    assert t["micro11"] not in [o.unit for o in options]  # a kilometre away
    assigned = assign_unit(incident, t["micro21"], people["admin"], note="归第2网格")
    assert (assigned.unit, assigned.grid, assigned.community) == (
        t["micro21"],
        t["grid2"],
        t["community"],
    )
    assert not assigned.unassigned
    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert entry.action == "unit_assigned" and entry.data["to"]["unit"] == t["micro21"].code
    assert entry.data["from"]["unit"] is None


def test_assigning_is_for_district_admins_and_nearby_units_only(small_territory, people):
    t = small_territory
    incident = report_at(*OUTSIDE)
    with pytest.raises(BoundaryReviewRefused, match="needs one of these roles"):
        assign_unit(incident, t["micro21"], people["chief"])
    with pytest.raises(BoundaryReviewRefused, match="within 100 m"):
        assign_unit(incident, t["micro11"], people["admin"])
    incident.refresh_from_db()
    assert incident.unit is None and incident.unassigned


def test_assignable_units_are_limited_to_the_admins_scope(
    django_user_model, small_territory, people
):
    t = small_territory
    incident = report_at(*OUTSIDE)
    # an administrator whose scope is grid 1 only sees no option near this point
    narrow = login(django_user_model, "narrow", DISTRICT_ADMIN, t["grid1"], Role.DISTRICT_ADMIN)
    assert Group.objects.get(name=DISTRICT_ADMIN) in narrow.groups.all()
    assert assignable_options(incident, narrow) == []
    with pytest.raises(BoundaryReviewRefused):
        assign_unit(incident, t["micro21"], narrow)
