"""The incident REST API (issue #3 point 15): GeoJSON lists with filters, detail, create,
transition, categories and the OpenAPI schema."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from gis.crs import wgs84_to_gcj02
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER
from incidents.models import Category, Incident
from incidents.services.intake import Report, report_incident
from incidents.workflow import transitions_from

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int = 9) -> datetime.datetime:
    return datetime.datetime(2025, 6, day, hour, 0, tzinfo=SH)


@pytest.fixture
def categories():
    # Seeded by migrations; a transactional test run before this one may have flushed them.
    from grids.roles import sync_groups
    from incidents.categories import load_seed

    if not Category.objects.filter(code="C0101").exists():
        load_seed()
        sync_groups()
    return {c.code: c for c in Category.objects.all()}


@pytest.fixture
def incidents(small_territory, categories):
    """a: grid 1 (micro 11), b: grid 2, police relevant, verified; c: grid 1 (micro 12),
    major 02, not overdue; d: outside every unit."""

    def make(lon, lat, code, source, day, **extra):
        return report_incident(
            Report(
                lon=lon,
                lat=lat,
                category=categories[code],
                source=source,
                reported_at=at(day),
                **extra,
            )
        )

    made = {
        "a": make(
            104.005,
            30.607,
            "C0101",
            "patrol",
            9,
            description="manhole cover missing",
            reporter_name="张三",
            reporter_phone="13812345678",
        ),
        "b": make(104.015, 30.607, "C0108", "resident", 12, description="camera broken"),
        "c": make(104.005, 30.602, "C0204", "hotline_12345", 20, description="signal dark"),
        "d": make(121.0, 31.0, "C0101", "police", 25, description="far away"),
    }
    Incident.objects.filter(pk=made["b"].pk).update(state="verified")
    Incident.objects.filter(pk=made["c"].pk).update(
        deadline=datetime.datetime(2099, 1, 1, tzinfo=SH)
    )
    return made


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-123456")


@pytest.fixture
def chief1(small_territory, user_in, categories):
    user = user_in(small_territory["grid1"], "grid_chief", username="chief1")
    user.groups.add(Group.objects.get(name=GRID_CHIEF))
    return user


def ids(response, incidents) -> set[str]:
    by_pk = {i.pk: name for name, i in incidents.items()}
    return {by_pk[f["id"]] for f in response.json()["features"]}


def test_list_is_a_geojson_feature_collection_in_lon_lat_with_masked_phones(admin, incidents):
    response = client_for(admin).get("/api/incidents")
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["count"] == 4
    assert {"next", "previous"} <= set(body)
    feature = next(f for f in body["features"] if f["id"] == incidents["a"].pk)
    assert feature["type"] == "Feature"
    lon, lat = feature["geometry"]["coordinates"]
    assert feature["geometry"]["type"] == "Point"
    assert abs(lon - 104.005) < 1e-9 and abs(lat - 30.607) < 1e-9
    props = feature["properties"]
    assert props["reporter_phone"] == "138****5678"
    assert props["category"]["code"] == "C0101"
    assert props["state"] == "reported" and props["state_label"] == "reported"
    assert props["units"]["microgrid"]["code"].endswith("00101")
    assert props["overdue"] is True and props["unassigned"] is False
    assert "13812345678" not in response.content.decode()
    far = next(f for f in body["features"] if f["id"] == incidents["d"].pk)["properties"]
    assert far["unassigned"] is True and far["units"]["street"] is None


def test_list_is_paginated(admin, incidents):
    body = client_for(admin).get("/api/incidents", {"page_size": 3}).json()
    assert body["count"] == 4 and len(body["features"]) == 3 and body["next"]
    second = client_for(admin).get("/api/incidents", {"page_size": 3, "page": 2}).json()
    assert len(second["features"]) == 1 and second["previous"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"unit": "grid1"}, {"a", "c"}),
        ({"unit": "micro11"}, {"a"}),
        ({"unit": "district"}, {"a", "b", "c"}),
        ({"category": "C0108"}, {"b"}),
        ({"major": "02"}, {"c"}),
        ({"state": "verified"}, {"b"}),
        ({"state": ["verified", "reported"]}, {"a", "b", "c", "d"}),
        ({"overdue": "1"}, {"a", "b", "d"}),
        ({"overdue": "0"}, {"c"}),
        ({"from": "2025-06-10", "to": "2025-06-20"}, {"b", "c"}),
        ({"to": "2025-06-09"}, {"a"}),
        ({"police_relevant": "1"}, {"b", "c"}),
        ({"police_relevant": "0"}, {"a", "d"}),
        ({"source": "hotline_12345"}, {"c"}),
        ({"q": "MANHOLE"}, {"a"}),
        ({"q": "张三"}, {"a"}),
        ({"unit": "grid1", "overdue": "1"}, {"a"}),
        ({"flag": "unassigned"}, {"d"}),
        ({"flag": "near_boundary"}, set()),
    ],
)
def test_filters_narrow_the_list(admin, incidents, small_territory, params, expected):
    if "unit" in params:
        params = {**params, "unit": small_territory[params["unit"]].code}
    response = client_for(admin).get("/api/incidents", params)
    assert response.status_code == 200, response.content
    assert ids(response, incidents) == expected


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"unit": "999"}, "unit="),
        ({"category": "X9999"}, "category="),
        ({"major": "1"}, "major="),
        ({"state": "sleeping"}, "state="),
        ({"overdue": "maybe"}, "overdue="),
        ({"from": "2025-13-01"}, "from="),
        ({"to": "yesterday"}, "to="),
        ({"police_relevant": "2"}, "police_relevant="),
        ({"source": "twitter"}, "source="),
        ({"sort": "colour"}, "sort="),
        ({"flag": "overdue"}, "flag="),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_parameter(admin, incidents, params, name):
    response = client_for(admin).get("/api/incidents", params)
    assert response.status_code == 400
    assert name in response.json()["error"]


def test_a_grid_chief_sees_only_the_grid(chief1, incidents):
    client = client_for(chief1)
    assert ids(client.get("/api/incidents"), incidents) == {"a", "c"}
    other = incidents["b"].pk
    assert client.get(f"/api/incidents/{other}").status_code == 404
    response = client.post(
        f"/api/incidents/{other}/transition", {"action": "accept", "lock_version": 0}, "json"
    )
    assert response.status_code == 404
    assert client.get(f"/api/incidents/{incidents['a'].pk}").status_code == 200


def test_district_admins_also_see_unassigned_incidents(small_territory, user_in, incidents):
    district = user_in(small_territory["district"], DISTRICT_ADMIN, username="admin1")
    street = user_in(small_territory["street"], GRID_CHIEF, username="street1")
    assert ids(client_for(district).get("/api/incidents"), incidents) == {"a", "b", "c", "d"}
    assert ids(client_for(street).get("/api/incidents"), incidents) == {"a", "b", "c"}


def test_incidents_without_a_microgrid_belong_to_their_grid(small_territory, user_in, incidents):
    Incident.objects.filter(pk=incidents["a"].pk).update(unit=None)
    chief = user_in(small_territory["grid1"], GRID_CHIEF, username="c1")
    member = user_in(small_territory["micro11"], GRID_MEMBER, username="m11")
    assert ids(client_for(chief).get("/api/incidents"), incidents) == {"a", "c"}
    assert ids(client_for(member).get("/api/incidents"), incidents) == set()


def test_anonymous_users_are_refused(incidents):
    assert APIClient().get("/api/incidents").status_code in (401, 403)


def test_create_converts_gcj02_and_geotags(chief1, small_territory):
    lon, lat = wgs84_to_gcj02(104.005, 30.607)
    response = client_for(chief1).post(
        "/api/incidents",
        {
            "lon": lon,
            "lat": lat,
            "crs": "gcj02",
            "category": "C0101",
            "source": "patrol",
            "description": "井盖缺失",
            "reporter_phone": "13812345678",
            "reported_at": "2025-06-09T09:00:00+08:00",
            "urgent": True,
        },
        "json",
    )
    assert response.status_code == 201, response.content
    feature = response.json()
    x, y = feature["geometry"]["coordinates"]
    assert abs(x - 104.005) < 1e-6 and abs(y - 30.607) < 1e-6
    props = feature["properties"]
    assert props["units"]["microgrid"]["code"] == small_territory["micro11"].code
    assert props["units"]["grid"]["code"] == small_territory["grid1"].code
    assert props["input_crs"] == "gcj02" and props["input_lon"] == lon
    assert props["reporter_phone"] == "138****5678"
    assert props["deadline"].startswith("2025-06-09T11:00:00")
    assert [e["action"] for e in props["timeline"]] == ["report"]
    assert props["timeline"][0]["actor"] == "chief1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lon": 200}, "lon=200.0 is out of range"),
        ({"lon": "east"}, "lon: "),
        ({"category": "X0000"}, "unknown category 'X0000'"),
        ({"source": "twitter"}, "source: "),
        ({"crs": "EPSG:3857"}, "crs: "),
        ({"reported_at": "2025-06-09T09:00:00"}, "time zone"),
        ({"reported_at": "June 9"}, "reported_at: "),
        ({"description": "x" * 4001}, "description: "),
    ],
)
def test_bad_creates_are_400_with_a_message(chief1, small_territory, changes, message):
    body = {"lon": 104.005, "lat": 30.607, "category": "C0101", "source": "patrol", **changes}
    response = client_for(chief1).post("/api/incidents", body, "json")
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Incident.objects.exists()


def test_transition_moves_and_stale_or_unauthorised_ones_are_409(
    chief1, small_territory, user_in, incidents
):
    member = user_in(small_territory["grid1"], GRID_MEMBER, username="member1")
    member.groups.add(Group.objects.get(name=GRID_MEMBER))
    client = client_for(chief1)
    url = f"/api/incidents/{incidents['a'].pk}/transition"
    response = client.post(url, {"action": "verify", "lock_version": 0}, "json")
    assert response.status_code == 200, response.content
    props = response.json()["properties"]
    assert props["state"] == "verified" and props["lock_version"] == 1
    assert [e["action"] for e in props["timeline"]] == ["report", "verify"]

    stale = client.post(url, {"action": "accept", "lock_version": 0}, "json")
    assert stale.status_code == 409 and "changed by someone else" in stale.json()["error"]

    not_theirs = client_for(member).post(url, {"action": "accept", "lock_version": 1}, "json")
    assert not_theirs.status_code == 409
    assert "needs one of these roles" in not_theirs.json()["error"]

    wrong_state = client.post(url, {"action": "handle", "lock_version": 1}, "json")
    assert wrong_state.status_code == 409

    missing = client.post(url, {"action": "accept"}, "json")
    assert missing.status_code == 400 and "lock_version" in missing.json()["error"]
    assert Incident.objects.get(pk=incidents["a"].pk).state == "verified"


def test_detail_lists_only_the_actions_the_user_may_make(
    chief1, small_territory, user_in, incidents
):
    member = user_in(small_territory["grid1"], GRID_MEMBER, username="member1")
    member.groups.add(Group.objects.get(name=GRID_MEMBER))
    url = f"/api/incidents/{incidents['a'].pk}"
    chief_actions = client_for(chief1).get(url).json()["properties"]["actions"]
    member_actions = client_for(member).get(url).json()["properties"]["actions"]
    assert [a["name"] for a in chief_actions] == [
        t.name for t in transitions_from("reported", {GRID_CHIEF})
    ]
    assert "accept" in {a["name"] for a in chief_actions}
    assert [a["name"] for a in member_actions] == [
        t.name for t in transitions_from("reported", {GRID_MEMBER})
    ]
    assert "accept" not in {a["name"] for a in member_actions}
    assert all(a["label"] for a in member_actions)


def test_categories_lists_the_active_ones(chief1, categories):
    Category.objects.filter(code="C0102").update(active=False)
    body = client_for(chief1).get("/api/categories").json()
    codes = {c["code"] for c in body}
    assert "C0101" in codes and "C0102" not in codes


def test_the_openapi_schema_has_the_incident_paths(chief1):
    response = client_for(chief1).get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/incidents",
        "/api/incidents/{id}",
        "/api/incidents/{id}/transition",
        "/api/categories",
    ):
        assert path in schema["paths"], path


def test_the_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text(encoding="utf-8")
    assert "/api/incidents" in text and "/api/locate" in text


def test_create_keeps_a_media_url_and_refuses_other_schemes(chief1, small_territory):
    body = {"lon": 104.005, "lat": 30.607, "category": "C0101", "source": "patrol"}
    api = client_for(chief1)
    response = api.post("/api/incidents", {**body, "media_url": "data:text/html,x"}, "json")
    assert response.status_code == 400 and "media_url" in str(response.json())
    response = api.post(
        "/api/incidents", {**body, "media_url": "http://img.example.org/1.jpg"}, "json"
    )
    assert response.status_code == 201, response.content
    detail = api.get(f"/api/incidents/{response.json()['id']}").json()
    assert detail["properties"]["media_url"] == "http://img.example.org/1.jpg"
