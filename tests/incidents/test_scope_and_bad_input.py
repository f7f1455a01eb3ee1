"""Scoping at the edges of a user's units, stale forms after boundary changes, and query
parameters that must give a clear 400, never a 500."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from grids.models import Role
from grids.roles import GRID_CHIEF, GRID_MEMBER
from incidents.models import Category, Incident
from incidents.services.actions import perform
from incidents.services.boundary_review import BoundaryReviewRefused, candidate_options
from incidents.services.boundary_review import confirm_unit as confirm
from incidents.services.duplicates import suggest_duplicates
from incidents.services.intake import Report, report_incident
from incidents.services.reassignment import reassign_open_incidents
from incidents.workflow import TransitionRefused
from tests.conftest import rect
from tests.incidents.test_extensions import login

pytestmark = pytest.mark.django_db

NEAR_EDGE = (104.00999, 30.607)  # 1 m west of the grid 1 / grid 2 edge


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "chief1": login(django_user_model, "chief1", GRID_CHIEF, t["grid1"], Role.GRID_CHIEF),
        "member1": login(
            django_user_model, "member1", GRID_MEMBER, t["grid1"], Role.FULLTIME_MEMBER
        ),
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
    }


def report(lon, lat, code="C0101"):
    return report_incident(
        Report(lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol")
    )


def test_duplicate_suggestions_are_limited_after_the_scope(small_territory, people):
    # Ten same-category incidents just across the edge in grid 2, one farther in grid 1.
    for k in range(10):
        report(104.0101 + k * 1e-6, 30.607)
    mine = report(104.0097, 30.607)
    found = suggest_duplicates(
        lon=104.01,
        lat=30.607,
        category=mine.category,
        reported_at=timezone.now(),
        limit=10,
        user=people["chief1"],
    )
    assert [s.incident for s in found] == [mine]


def test_a_move_out_of_ones_units_goes_back_to_the_list(client, small_territory, people):
    incident = report(*NEAR_EDGE)
    client.force_login(people["chief1"])
    response = client.post(
        reverse("incident-unit", args=[incident.pk]),
        {"decision": "move", "unit": small_territory["micro21"].code, "lock_version": 0},
    )
    assert response.status_code == 302 and response.url == reverse("incident-list")
    incident.refresh_from_db()
    assert incident.unit == small_territory["micro21"]


def test_a_boundary_change_makes_an_open_confirm_form_stale(small_territory, people, make_unit):
    incident = report(*NEAR_EDGE)
    seen = Incident.objects.get(pk=incident.pk)
    # grid 1's micro-grid 11 is redrawn so the point now falls in a new micro-grid 13
    t = small_territory
    today = datetime.date.today()
    t["micro11"].versions.filter(valid_to__isnull=True).update(valid_to=today)
    t["micro11"].retired_on = today
    t["micro11"].save()
    make_unit(
        "microgrid",
        f"{t['grid1'].code}03",
        rect(104.00, 30.605, 104.01, 30.61),
        parent=t["grid1"],
        valid_from=datetime.date.today(),
    )
    reassign_open_incidents([t["micro11"].pk], on=datetime.date.today())
    incident.refresh_from_db()
    assert incident.unit.code == f"{t['grid1'].code}03"
    with pytest.raises(BoundaryReviewRefused, match="changed by someone else"):
        confirm(seen, people["chief"])


def test_retired_units_are_no_candidates(small_territory, people):
    incident = report(*NEAR_EDGE)
    assert [o.unit for o in candidate_options(incident)] == [small_territory["micro21"]]
    small_territory["micro21"].retired_on = datetime.date.today()
    small_territory["micro21"].save()
    assert candidate_options(incident) == []


def test_a_duplicate_cannot_be_linked_through_to_an_incident_out_of_scope(small_territory, people):
    theirs = report(104.015, 30.607)  # grid 2
    mine = report(104.005, 30.607)  # grid 1
    Incident.objects.filter(pk=mine.pk).update(duplicate_of=theirs)
    new = report(104.005, 30.6071)
    with pytest.raises(TransitionRefused, match="outside your units"):
        perform(new, "mark_duplicate", people["member1"], original=mine.pk)
    new.refresh_from_db()
    assert new.duplicate_of is None and new.is_open


@pytest.mark.parametrize(
    "query",
    [
        "to=9999-12-31",
        "from=0001-01-01",
        "unit=%00",
        "q=a%00b",
        "category=C01%0001",
    ],
)
@pytest.mark.parametrize("path", ["/incidents/", "/incidents/export.csv", "/api/incidents"])
def test_bad_parameters_are_a_400_naming_them(client, small_territory, people, path, query):
    client.force_login(people["chief"])
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert name in response.content.decode()


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=0001-01-01", "unit=%00"])
@pytest.mark.parametrize("path", ["/incidents/kpis", "/incidents/kpis.csv"])
def test_kpi_bad_parameters_are_a_400(client, small_territory, people, path, query):
    client.force_login(people["chief"])
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400


def test_duplicates_api_refuses_a_date_out_of_range(client, small_territory, people):
    client.force_login(people["chief"])
    response = client.get(
        "/api/incidents/duplicates",
        {
            "lon": 104.005,
            "lat": 30.607,
            "category": "C0101",
            "reported_at": "0001-01-01T00:00:00+00:00",
        },
    )
    assert response.status_code == 400 and "reported_at" in response.json()["error"]


@pytest.mark.parametrize("amount", ["251"])
def test_an_extension_of_more_than_a_working_year_is_refused(amount):
    from incidents.services.extensions import _amount

    with pytest.raises(TransitionRefused, match="at most 250"):
        _amount(amount, "days")
