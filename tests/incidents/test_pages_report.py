"""The report form: who may use it, picking the point, duplicates first, errors per field."""

import io
import re

import pytest
from django.urls import reverse

from gis import crs as crs_tools
from grids.models import Role
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER, POLICE_LIAISON
from incidents.models import Category, Incident, IncidentPhoto, TimelineEntry
from incidents.services.intake import Report, report_incident
from maps.assets import foreign_urls
from maps.bundles import static_files
from tests.incidents.test_extensions import login

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
URL = "/incidents/new"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "member": login(django_user_model, "member", GRID_MEMBER, t["grid1"], Role.FULLTIME_MEMBER),
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
        "admin": login(
            django_user_model, "admin", DISTRICT_ADMIN, t["district"], Role.DISTRICT_ADMIN
        ),
        "police": login(
            django_user_model, "police", POLICE_LIAISON, t["community"], Role.COMMUNITY_POLICE
        ),
    }


def form(**changes):
    data = {
        "lon": "104.005",
        "lat": "30.607",
        "crs": "wgs84",
        "category": "C0101",
        "description": "井盖缺失",
        "source": "patrol",
        "reporter_name": "李四",
        "reporter_phone": "13912345678",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def png(name="a.png"):
    f = io.BytesIO(PNG)
    f.name = name
    return f


def field_errors(html: str, name: str) -> str:
    """The text of the form paragraph holding field `name`."""
    return html.split(f'class="field field-{name}')[1].split("</p>")[0]


def test_the_url_is_named():
    assert reverse("incident-report") == URL


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response.url


@pytest.mark.parametrize("who", ["police", "nobody"])
def test_others_are_refused(client, django_user_model, people, who):
    user = people.get(who) or django_user_model.objects.create_user("nobody", password="x-12345")
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert client.post(URL, form()).status_code == 403
    assert not Incident.objects.exists()


@pytest.mark.parametrize("who", ["member", "chief", "admin"])
def test_the_form_has_a_picker_map_and_grouped_categories(client, people, who):
    client.force_login(people[who])
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert foreign_urls(html) == []
    assert "vendor/leaflet-1.9.3/leaflet.js" in static_files(html)
    assert 'getElementById("id_lon")' in html and 'id="id_lon"' in html
    assert re.search(r'<optgroup label="C01 [^"]+">\s*<option value="C0101"', html)
    assert '<option value="import"' not in html  # imports use the import command
    assert "/api/incidents/duplicates" in html
    assert 'href="/incidents/new"' in html  # the nav link


def test_the_map_shows_the_users_units(client, small_territory, people):
    client.force_login(people["member"])
    html = client.get(URL).content.decode()
    codes = set(re.findall(r'"properties": \{"code": "(\d+)"\}', html))
    t = small_territory
    assert codes == {t["grid1"].code, t["micro11"].code, t["micro12"].code}


def test_a_report_is_saved_with_its_photos_and_opens_its_page(client, small_territory, people):
    client.force_login(people["member"])
    data = form(urgent="on")
    data["photos"] = [png("a.png"), png("b.png")]
    response = client.post(URL, data)
    incident = Incident.objects.get()
    assert response.status_code == 302 and response.url == f"/incidents/{incident.pk}/"
    assert incident.unit == small_territory["micro11"] and incident.urgent
    assert (incident.reporter_name, incident.reporter_phone) == ("李四", "13912345678")
    assert incident.source == "patrol" and incident.description == "井盖缺失"
    assert IncidentPhoto.objects.filter(incident=incident).count() == 2
    assert TimelineEntry.objects.get(incident=incident).actor == people["member"]
    assert f"incident #{incident.pk} was reported" in client.get(response.url).content.decode()


def test_typed_coordinates_keep_their_crs(client, small_territory, people):
    lon, lat = crs_tools.from_wgs84(104.005, 30.607, "gcj02")
    client.force_login(people["member"])
    response = client.post(URL, form(lon=f"{lon:.8f}", lat=f"{lat:.8f}", crs="gcj02"))
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert incident.input_crs == "gcj02" and abs(incident.input_lon - lon) < 1e-8
    assert abs(incident.location.x - 104.005) < 1e-6 and abs(incident.location.y - 30.607) < 1e-6
    assert incident.unit == small_territory["micro11"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"lat": "95"}, "lat"),
        ({"lon": "east"}, "lon"),
        ({"lon": None}, "lon"),
        ({"crs": "utm"}, "crs"),
        ({"category": "Z9999"}, "category"),
        ({"source": "import"}, "source"),
        ({"reporter_phone": "call me"}, "reporter_phone"),
    ],
)
def test_bad_input_comes_back_next_to_its_field(client, people, changes, field):
    client.force_login(people["member"])
    response = client.post(URL, form(**changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="error"' in field_errors(html, field)
    assert not Incident.objects.exists()
    assert 'value="井盖缺失"' in html or "井盖缺失</textarea>" in html  # the input is kept


def test_a_description_over_4000_characters_is_refused_at_its_field(client, people):
    client.force_login(people["member"])
    response = client.post(URL, form(description="井" * 4001))
    assert response.status_code == 400
    assert 'class="error"' in field_errors(response.content.decode(), "description")
    assert not Incident.objects.exists()


def test_a_bad_photo_saves_nothing(client, people):
    client.force_login(people["member"])
    bad = io.BytesIO(b"%PDF-1.4 not a photo")
    bad.name = "scan.jpg"
    data = form()
    data["photos"] = [png(), bad]
    response = client.post(URL, data)
    assert response.status_code == 400
    assert "scan.jpg is not a JPEG, PNG or WebP image" in field_errors(
        response.content.decode(), "photos"
    )
    assert not Incident.objects.exists() and not IncidentPhoto.objects.exists()


def test_possible_duplicates_are_shown_before_saving(client, small_territory, people):
    manhole = Category.objects.get(code="C0101")
    earlier = report_incident(Report(lon=104.0051, lat=30.607, category=manhole, source="resident"))
    client.force_login(people["member"])
    response = client.post(URL, form())
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/incidents/{earlier.pk}/"' in html and "9.6 m" in html
    assert 'name="not_duplicate"' in html
    assert Incident.objects.count() == 1
    response = client.post(URL, form(not_duplicate="on"))
    assert response.status_code == 302
    assert Incident.objects.count() == 2


def test_other_categories_and_incidents_outside_the_scope_are_no_duplicates(
    client, small_territory, people
):
    manhole = Category.objects.get(code="C0101")
    other = Category.objects.exclude(code="C0101").first()
    report_incident(Report(lon=104.005, lat=30.607, category=other, source="resident"))
    # 19 m away but in grid 2, which the member (grid 1) does not see
    report_incident(Report(lon=104.0101, lat=30.607, category=manhole, source="resident"))
    client.force_login(people["member"])
    response = client.post(URL, form(lon="104.0099"))
    assert response.status_code == 302
    assert Incident.objects.count() == 3


def test_a_report_outside_the_users_units_is_confirmed_first_then_saved_but_not_opened(
    client, small_territory, people
):
    client.force_login(people["member"])  # grid 1
    response = client.post(URL, form(lon="104.015"))  # grid 2
    assert response.status_code == 400 and not Incident.objects.exists()
    html = response.content.decode()
    grid2, micro21 = small_territory["grid2"], small_territory["micro21"]
    assert f"This point lies in {micro21.name} ({micro21.code}), outside your units" in html
    assert 'name="outside_units"' in html and 'value="104.015"' in html  # the input is kept
    far = client.post(URL, form(lon="105.5"))  # outside every unit
    assert far.status_code == 400 and "outside every unit" in far.content.decode()
    response = client.post(URL, form(lon="104.015", outside_units="on"))
    assert response.status_code == 302 and response.url == URL
    incident = Incident.objects.get()
    assert incident.grid == grid2
    assert "it lies outside your units" in client.get(URL).content.decode()
    # inside the member's units nothing is asked
    assert client.post(URL, form()).status_code == 302
    assert Incident.objects.count() == 2
