"""GET /api/incidents/duplicates: nearby open incidents of a category, in the user's scope."""

import datetime

import pytest

from gis import crs as crs_tools
from grids.models import Role
from grids.roles import GRID_CHIEF, GRID_MEMBER
from incidents.models import Category
from incidents.services.intake import Report, report_incident
from incidents.services.transitions import transition
from tests.incidents.test_extensions import MONDAY_9, login

pytestmark = pytest.mark.django_db

URL = "/api/incidents/duplicates"


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
        "member": login(django_user_model, "member", GRID_MEMBER, t["grid1"], Role.FULLTIME_MEMBER),
    }


def report(lon, lat=30.607, code="C0101", **extra):
    return report_incident(
        Report(lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol", **extra)
    )


def get(client, user, **params):
    client.force_login(user)
    return client.get(URL, params)


def test_nearby_open_incidents_of_the_category_come_nearest_first(client, people):
    near = report(104.0051)  # 9.6 m
    nearer = report(104.00502)  # 1.9 m
    report(104.0056)  # 57 m: outside the 50 m radius
    report(104.005, code="E0501")  # another category
    closed = report(104.005)
    transition(closed, "void", people["chief"], note="误报")
    response = get(client, people["chief"], lon="104.005", lat="30.607", category="C0101")
    assert response.status_code == 200
    body = response.json()
    assert [s["id"] for s in body] == [nearer.pk, near.pk]
    first = body[0]
    assert first["url"] == f"/incidents/{nearer.pk}/"
    assert first["category"] == "C0101" and first["state"] == "reported"
    assert 1.5 < first["distance_m"] < 2.5


def test_only_incidents_the_user_may_see_are_listed(client, people):
    hidden = report(104.0101)  # grid 2
    shown = report(104.0099)  # grid 1
    body = get(client, people["member"], lon="104.0100", lat="30.607", category="C0101").json()
    assert [s["id"] for s in body] == [shown.pk]
    body = get(client, people["chief"], lon="104.0100", lat="30.607", category="C0101").json()
    assert {s["id"] for s in body} == {shown.pk, hidden.pk}


def test_coordinates_in_another_crs_are_converted(client, people):
    incident = report(104.005)
    lon, lat = crs_tools.from_wgs84(104.005, 30.607, "bd09")
    body = get(
        client, people["chief"], lon=f"{lon:.8f}", lat=f"{lat:.8f}", crs="bd09", category="C0101"
    ).json()
    assert [s["id"] for s in body] == [incident.pk] and body[0]["distance_m"] < 0.5


def test_the_time_window_follows_reported_at(client, people, settings):
    incident = report(104.005, reported_at=MONDAY_9)
    days = settings.WEIGE_DUPLICATE_WINDOW_DAYS
    inside = (MONDAY_9 + datetime.timedelta(days=days - 1)).isoformat()
    outside = (MONDAY_9 + datetime.timedelta(days=days + 1)).isoformat()
    params = {"lon": "104.005", "lat": "30.607", "category": "C0101"}
    assert [s["id"] for s in get(client, people["chief"], reported_at=inside, **params).json()] == [
        incident.pk
    ]
    assert get(client, people["chief"], reported_at=outside, **params).json() == []


@pytest.mark.parametrize(
    "params, named",
    [
        ({"lat": "30.607", "category": "C0101"}, "lon"),
        ({"lon": "104", "lat": "north", "category": "C0101"}, "lat"),
        ({"lon": "200", "lat": "30.6", "category": "C0101"}, "lon"),
        ({"lon": "nan", "lat": "30.6", "category": "C0101"}, "lon"),
        ({"lon": "104", "lat": "30.6", "crs": "utm", "category": "C0101"}, "crs"),
        ({"lon": "104", "lat": "30.6", "category": "Z9999"}, "category"),
        ({"lon": "104", "lat": "30.6"}, "category"),
        (
            {"lon": "104", "lat": "30.6", "category": "C0101", "reported_at": "2025-06-09T09:00"},
            "reported_at",
        ),
        ({"lon": "104", "lat": "30.6", "category": "C0101", "reported_at": "soon"}, "reported_at"),
    ],
)
def test_bad_parameters_answer_400_naming_the_parameter(client, people, params, named):
    response = get(client, people["chief"], **params)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{named}:")


def test_anonymous_requests_are_refused(client, seeded):
    response = client.get(URL, {"lon": "104", "lat": "30.6", "category": "C0101"})
    assert response.status_code in (401, 403)


def test_the_endpoint_is_in_the_openapi_schema(client, people):
    client.force_login(people["chief"])
    schema = client.get("/api/schema", {"format": "json"}).json()
    operation = schema["paths"]["/api/incidents/duplicates"]["get"]
    names = {p["name"]: p for p in operation["parameters"]}
    assert set(names) == {"lon", "lat", "crs", "category", "reported_at"}
    assert names["lon"]["required"] and names["category"]["required"]
    assert {"200", "400"} <= set(operation["responses"])
