"""Open311 GeoReport v2 at /open311/v2/ (issue #3 point 16)."""

import datetime
import xml.etree.ElementTree as ET

import pytest
from django.utils import timezone

from incidents.models import Category, Incident
from incidents.services.intake import Report, report_incident

pytestmark = pytest.mark.django_db

BASE = "/open311/v2"
KEY = "test-key-123"
PHONE = "13812345678"


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
def keys(settings):
    settings.WEIGE_OPEN311_API_KEYS = [KEY]


@pytest.fixture
def reports(small_territory, categories):
    """recent: grid 1, open; closed: grid 2, closed; old: 200 days ago; far: unassigned."""
    now = timezone.now()

    def make(lon, lat, days_ago, **extra):
        return report_incident(
            Report(
                lon=lon,
                lat=lat,
                category=categories["C0101"],
                source="resident",
                reported_at=now - datetime.timedelta(days=days_ago),
                reporter_name="张三",
                reporter_phone=PHONE,
                **extra,
            )
        )

    made = {
        "recent": make(104.005, 30.607, 2, description="manhole cover missing"),
        "closed": make(104.015, 30.607, 5, description="fixed already"),
        "old": make(104.005, 30.607, 200, description="old one"),
        "far": make(121.0, 31.0, 1, description="far away"),
    }
    Incident.objects.filter(pk=made["closed"].pk).update(state="closed")
    return made


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == {"code", "description"}
    assert body[0]["code"] == response.status_code
    return body[0]["code"], body[0]["description"]


def ids_of(response) -> set[int]:
    return {int(r["service_request_id"]) for r in response.json()}


def test_discovery(client, settings):
    settings.WEIGE_OPEN311_CONTACT = "锦宁区网格中心"
    settings.WEIGE_OPEN311_KEY_SERVICE = "https://example.org/keys"
    response = client.get(f"{BASE}/discovery.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert {"changeset", "contact", "key_service", "endpoints"} <= set(body)
    assert body["contact"] == "锦宁区网格中心"
    assert body["key_service"] == "https://example.org/keys"
    endpoint = body["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2/"
    assert set(endpoint["formats"]) == {"application/json", "text/xml"}
    xml = client.get(f"{BASE}/discovery.xml").content
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml)
    assert root.tag == "discovery" and root.findtext("contact") == "锦宁区网格中心"
    assert root.find("endpoints/endpoint/specification").text.endswith("GeoReport_v2")
    assert {f.text for f in root.findall("endpoints/endpoint/formats/format")} == {
        "application/json",
        "text/xml",
    }


def test_services_json_and_xml(client, categories):
    active = Category.objects.active().count()
    Category.objects.filter(code="C0108").update(active=False)
    response = client.get(f"{BASE}/services.json")
    assert response.status_code == 200
    body = response.json()
    assert len(body) == active - 1
    manhole = next(s for s in body if s["service_code"] == "C0101")
    c0101 = categories["C0101"]
    assert manhole["service_name"] == c0101.name
    assert manhole["group"] == c0101.major_name
    assert manhole["type"] == "realtime" and c0101.major_name in manhole["description"]
    assert "C0108" not in {s["service_code"] for s in body}

    response = client.get(f"{BASE}/services.xml")
    assert response["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "services"
    services = {s.findtext("service_code"): s for s in root.findall("service")}
    assert len(services) == active - 1
    assert services["C0101"].findtext("service_name") == c0101.name
    assert services["C0101"].findtext("group") == c0101.major_name


def test_service_definition_and_unknown_code(client, categories):
    body = client.get(f"{BASE}/services/C0101.json").json()
    assert body["service_code"] == "C0101"
    assert [a["code"] for a in body["attributes"]] == ["urgent"]
    root = ET.fromstring(client.get(f"{BASE}/services/C0101.xml").content)
    assert root.find("attributes/attribute/code").text == "urgent"
    response = client.get(f"{BASE}/services/C9999.json")
    assert response.status_code == 404
    assert "C9999" in error_of(response)[1]


def post(client, **data):
    fields = {
        "api_key": KEY,
        "service_code": "C0101",
        "lat": "30.607",
        "long": "104.005",
        "description": "井盖缺失",
        "first_name": "三",
        "last_name": "张",
        "phone": PHONE,
    }
    fields.update(data)
    fields = {k: v for k, v in fields.items() if v is not None}
    return client.post(f"{BASE}/requests.json", fields)


def test_post_creates_a_geotagged_incident(client, keys, small_territory, categories):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    response = post(csrf_client, **{"attribute[urgent]": "true"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body) == 1 and body[0]["account_id"] is None and body[0]["service_notice"] == ""
    incident = Incident.objects.get(pk=int(body[0]["service_request_id"]))
    assert incident.source == "resident" and incident.urgent is True
    assert incident.grid == small_territory["grid1"]
    assert incident.unit == small_territory["micro11"]
    assert incident.reporter_phone == PHONE and incident.reporter_name == "张 三"
    assert abs(incident.location.x - 104.005) < 1e-9
    assert incident.timeline.count() == 1

    response = client.post(
        f"{BASE}/requests.xml",
        {"api_key": KEY, "service_code": "C0101", "lat": "30.607", "long": "104.005"},
    )
    root = ET.fromstring(response.content)
    assert root.tag == "service_requests"
    assert Incident.objects.filter(pk=int(root.findtext("request/service_request_id"))).exists()


@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_post_without_a_valid_api_key_is_403(client, keys, categories, key):
    response = post(client, api_key=key)
    assert response.status_code == 403
    error_of(response)
    response = client.post(f"{BASE}/requests.xml", {"service_code": "C0101"})
    assert response.status_code == 403
    root = ET.fromstring(response.content)
    assert root.tag == "errors" and root.findtext("error/code") == "403"
    assert root.findtext("error/description")
    assert not Incident.objects.exists()


def test_post_no_keys_configured_refuses_everything(client, settings, categories):
    settings.WEIGE_OPEN311_API_KEYS = []
    assert post(client).status_code == 403


def test_post_bad_input_is_400(client, keys, small_territory, categories):
    response = post(client, lat=None, long=None, address_string="春熙路1号")
    assert response.status_code == 400
    assert error_of(response)[1] == "lat/long required"
    # the spec: 404 for a service_code not found
    assert error_of(post(client, service_code="C9999"))[0] == 404
    assert error_of(post(client, service_code=None))[0] == 400
    assert error_of(post(client, lat="abc"))[0] == 400
    assert error_of(post(client, long="181"))[0] == 400
    assert error_of(post(client, description="x" * 4001))[0] == 400  # the spec's limit
    Category.objects.filter(code="C0108").update(active=False)
    assert error_of(post(client, service_code="C0108")) == (404, "unknown service_code C0108")
    assert error_of(post(client, service_code="c0101"))[0] == 404  # codes are exact
    assert not Incident.objects.exists()
    assert post(client, description="x" * 4000).status_code == 200


def test_get_by_id_and_detail(client, reports):
    recent, old = reports["recent"], reports["old"]
    response = client.get(f"{BASE}/requests.json", {"service_request_id": f"{recent.pk},{old.pk}"})
    assert ids_of(response) == {recent.pk, old.pk}  # ids ignore the date window
    response = client.get(f"{BASE}/requests/{recent.pk}.json")
    assert response.status_code == 200
    (item,) = response.json()
    assert item["service_request_id"] == str(recent.pk)
    assert item["status"] == "open" and item["service_code"] == "C0101"
    assert item["description"] == "manhole cover missing" and item["address"] == ""
    assert abs(item["lat"] - 30.607) < 1e-9 and abs(item["long"] - 104.005) < 1e-9
    assert item["agency_responsible"] == "第1网格 (510199001001001)"
    expected = datetime.datetime.fromisoformat(item["expected_datetime"])
    assert expected == recent.deadline
    assert datetime.datetime.fromisoformat(item["requested_datetime"]) == recent.reported_at
    assert item["updated_datetime"]
    far = client.get(f"{BASE}/requests/{reports['far'].pk}.json").json()[0]
    assert far["agency_responsible"] == ""


def test_unknown_id_is_404(client, reports):
    for path in ("requests/999999.json", "requests/abc.json"):
        response = client.get(f"{BASE}/{path}")
        assert response.status_code == 404
        error_of(response)
    response = client.get(f"{BASE}/requests/999999.xml")
    assert response.status_code == 404
    assert ET.fromstring(response.content).findtext("error/code") == "404"


def test_status_filter_and_90_day_default(client, reports):
    r = reports
    everything = ids_of(client.get(f"{BASE}/requests.json"))
    assert everything == {r["recent"].pk, r["closed"].pk, r["far"].pk}  # not the 200-day one
    assert ids_of(client.get(f"{BASE}/requests.json", {"status": "open"})) == {
        r["recent"].pk,
        r["far"].pk,
    }
    closed = client.get(f"{BASE}/requests.json", {"status": "closed"})
    assert ids_of(closed) == {r["closed"].pk}
    assert closed.json()[0]["status"] == "closed"
    assert error_of(client.get(f"{BASE}/requests.json", {"status": "done"}))[0] == 400
    # the spec: comma-delimited values
    both = client.get(f"{BASE}/requests.json", {"status": "open,closed"})
    assert ids_of(both) == everything
    assert error_of(client.get(f"{BASE}/requests.json", {"status": "open,done"}))[0] == 400
    assert ids_of(client.get(f"{BASE}/requests.json", {"service_code": "C0108"})) == set()


def test_date_range(client, reports):
    r = reports
    now = timezone.now()
    window = {  # 90 days, the most the spec allows
        "start_date": (now - datetime.timedelta(days=240)).isoformat(),
        "end_date": (now - datetime.timedelta(days=150)).isoformat(),
    }
    assert ids_of(client.get(f"{BASE}/requests.json", window)) == {r["old"].pk}
    window["start_date"] = (now - datetime.timedelta(days=241)).isoformat()
    too_long = client.get(f"{BASE}/requests.json", window)
    assert error_of(too_long)[0] == 400 and "90 days" in error_of(too_long)[1]
    window = {"start_date": (now - datetime.timedelta(days=3)).date().isoformat()}
    assert ids_of(client.get(f"{BASE}/requests.json", window)) == {r["recent"].pk, r["far"].pk}
    backwards = {"start_date": "2025-06-10T00:00:00+08:00", "end_date": "2025-06-01T00:00:00Z"}
    assert error_of(client.get(f"{BASE}/requests.json", backwards))[0] == 400
    assert error_of(client.get(f"{BASE}/requests.json", {"start_date": "yesterday"}))[0] == 400
    for impossible in (
        {"start_date": "2026-13-45T00:00:00Z"},
        {"start_date": "2026-02-30"},
        {"end_date": "2026-11-26T25:00:00Z"},
        {"start_date": "2026-11-26T00:00:00+99:00"},
        {"service_request_id": "9" * 23},
    ):
        for fmt in ("json", "xml"):
            response = client.get(f"{BASE}/requests.{fmt}", impossible)
            assert response.status_code == 400, impossible
    assert error_of(client.get(f"{BASE}/requests/{'9' * 23}.json"))[0] == 404


def test_no_personal_data_in_get_output(client, reports):
    for fmt in ("json", "xml"):
        for path in (f"requests.{fmt}", f"requests/{reports['recent'].pk}.{fmt}"):
            content = client.get(f"{BASE}/{path}").content.decode()
            assert PHONE not in content and "138****5678" not in content
            assert "张三" not in content


def test_xml_request_list_parses(client, reports):
    response = client.get(f"{BASE}/requests.xml")
    assert response.status_code == 200
    assert response.content.startswith(b"<?xml")
    root = ET.fromstring(response.content)
    assert root.tag == "service_requests"
    requests = {int(e.findtext("service_request_id")): e for e in root.findall("request")}
    assert set(requests) == {reports["recent"].pk, reports["closed"].pk, reports["far"].pk}
    recent = requests[reports["recent"].pk]
    assert recent.findtext("agency_responsible") == "第1网格 (510199001001001)"
    assert recent.findtext("status") == "open"
    assert float(recent.findtext("lat")) == pytest.approx(30.607)


def test_tokens_are_not_used(client):
    response = client.get(f"{BASE}/tokens/abc123.json")
    assert response.status_code == 404
    assert "token" in error_of(response)[1]


def test_a_control_character_in_a_report_does_not_break_the_xml_feed(
    client, keys, small_territory, categories
):
    response = post(client, description="bad\x01char\x0bhere\ttab")
    assert response.status_code == 200
    (created,) = response.json()
    for path in ("requests.xml", f"requests/{created['service_request_id']}.xml"):
        root = ET.fromstring(client.get(f"{BASE}/{path}").content)  # well-formed
        assert root.findtext("request/description") == "badcharhere\ttab"
    item = client.get(f"{BASE}/requests/{created['service_request_id']}.json").json()[0]
    assert item["description"] == "bad\x01char\x0bhere\ttab"  # JSON keeps what was sent


def test_anything_else_is_the_specs_404_and_no_csrf_page(client, keys, categories):
    for path, fmt in (
        ("requests.html", "xml"),
        ("foo.json", "json"),
        ("requests/1", "xml"),
        ("", "xml"),
    ):
        response = client.get(f"{BASE}/{path}")
        assert response.status_code == 404, path
        if fmt == "json":
            assert error_of(response)[0] == 404
        else:
            assert ET.fromstring(response.content).findtext("error/code") == "404"
    strict = type(client)(enforce_csrf_checks=True)
    for method, path in (("post", "services.json"), ("put", "requests/1.json")):
        response = getattr(strict, method)(f"{BASE}/{path}")
        assert response.status_code == 405, path
        assert error_of(response)[0] == 405


def test_the_api_key_may_come_in_the_query_string(client, keys, small_territory, categories):
    fields = {"service_code": "C0101", "lat": "30.607", "long": "104.005"}
    response = client.post(f"{BASE}/requests.json?api_key={KEY}", fields)
    assert response.status_code == 200 and Incident.objects.count() == 1


def test_a_media_url_is_kept_and_given_back(client, keys, small_territory, categories):
    url = "https://img.example.org/reports/井盖.jpg?size=large"
    response = post(client, media_url=url)
    assert response.status_code == 200, response.content
    pk = response.json()[0]["service_request_id"]
    assert Incident.objects.get(pk=pk).media_url == url
    assert client.get(f"{BASE}/requests/{pk}.json").json()[0]["media_url"] == url
    root = ET.fromstring(client.get(f"{BASE}/requests/{pk}.xml").content)
    assert root.findtext("request/media_url") == url
    # without one the field is there and empty, as before
    pk = post(client).json()[0]["service_request_id"]
    assert client.get(f"{BASE}/requests/{pk}.json").json()[0]["media_url"] == ""


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://example.org/a.jpg", "not a url", "https://x.org/" + "a" * 500],
)
def test_a_media_url_that_is_no_web_address_is_400(client, keys, small_territory, categories, url):
    status, message = error_of(post(client, media_url=url))
    assert status == 400 and "media_url" in message
    assert not Incident.objects.exists()
