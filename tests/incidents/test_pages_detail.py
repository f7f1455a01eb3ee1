"""The incident page: facts, map, timeline, duplicates and the actions each role may make."""

import io
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from grids.models import Role, StaffAssignment, StaffMember
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER, POLICE_LIAISON
from incidents.models import Category, DispatchRule, DispatchTarget, Incident, TimelineEntry
from incidents.services.actions import perform
from incidents.services.intake import IntakeError, Report, report_incident
from incidents.workflow import State
from maps.assets import foreign_urls
from maps.bundles import static_files
from tests.conftest import D2024
from tests.incidents.test_extensions import MONDAY_9, login

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NEAR_EDGE = (104.00999, 30.607)


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
        "member": login(
            django_user_model, "member", GRID_MEMBER, t["community"], Role.FULLTIME_MEMBER
        ),
        "police": login(
            django_user_model, "police", POLICE_LIAISON, t["community"], Role.COMMUNITY_POLICE
        ),
        "admin": login(
            django_user_model, "admin", DISTRICT_ADMIN, t["district"], Role.DISTRICT_ADMIN
        ),
        "other": login(django_user_model, "other", GRID_CHIEF, t["grid2"], Role.GRID_CHIEF),
    }


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def report(lon=104.005, lat=30.607, code="C0101", **extra):
    return report_incident(
        Report(lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol", **extra)
    )


def page(client, user, incident):
    client.force_login(user)
    response = client.get(reverse("incident-detail", args=[incident.pk]))
    return response, response.content.decode()


def offered(html: str) -> set[str]:
    return set(re.findall(r'<button type="submit" name="action" value="([a-z_]+)"', html))


def outlines(html: str) -> dict[str, set[tuple[float, float]]]:
    """The boundaries drawn on the page's map: {unit code: set of (lon, lat) vertices}."""
    found = {}
    for blob in re.findall(r"_add\((\{.*\})\);", html):
        for feature in json.loads(blob)["features"]:
            rings = feature["geometry"]["coordinates"]
            while isinstance(rings[0][0], list):
                rings = [p for ring in rings for p in ring]
            found[feature["properties"]["code"]] = {tuple(p) for p in rings}
    return found


def box(x0, y0, x1, y1) -> set[tuple[float, float]]:
    return {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}


def post_action(client, incident, action, lock_version=None, **fields):
    data = {"action": action, f"{action}-lock_version": incident.lock_version}
    if lock_version is not None:
        data[f"{action}-lock_version"] = lock_version
    data.update({f"{action}-{name}": value for name, value in fields.items()})
    return client.post(reverse("incident-detail", args=[incident.pk]), data)


def test_the_page_shows_the_facts_with_a_masked_phone(client, small_territory, people):
    t = small_territory
    incident = report(reporter_name="张三", reporter_phone="13812345678", description="井盖缺失")
    response, html = page(client, people["chief"], incident)
    assert response.status_code == 200
    assert "张三" in html and "138****5678" in html and "13812345678" not in html
    assert "C0101" in html and "井盖缺失" in html and "grid patrol" in html
    for unit in (t["micro11"], t["grid1"], t["community"], t["street"]):
        assert f'href="/units/{unit.code}/"' in html
    assert "WGS 84: 104.005, 30.607" in html
    assert incident.deadline_note == "" or incident.deadline_note in html


def test_the_page_map_shows_the_point_and_its_boundaries_and_nothing_foreign(
    client, small_territory, people
):
    incident = report()
    _response, html = page(client, people["chief"], incident)
    assert "[30.607, 104.005]" in html  # the point, lat first
    assert outlines(html) == {
        small_territory["micro11"].code: box(104.0, 30.605, 104.01, 30.61),
        small_territory["grid1"].code: box(104.0, 30.6, 104.01, 30.61),
    }
    assert "vendor/leaflet-1.9.3/leaflet.js" in static_files(html)
    assert foreign_urls(html) == []


def test_overdue_badges_show(client, small_territory, people):
    incident = report(reported_at=MONDAY_9)
    _response, html = page(client, people["chief"], incident)
    assert "3× overdue" in html


def test_incidents_outside_the_scope_are_not_found(client, small_territory, people):
    incident = report()
    response, _html = page(client, people["other"], incident)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "who, expected",
    [
        ("chief", {"verify", "accept", "self_resolve", "void", "mark_duplicate"}),
        ("member", {"verify", "self_resolve", "mark_duplicate"}),
        ("admin", {"verify", "accept", "void", "mark_duplicate"}),
        ("police", set()),
    ],
)
def test_only_the_actions_of_the_users_roles_are_offered(
    client, small_territory, people, who, expected
):
    _response, html = page(client, people[who], report())
    assert offered(html) == expected


def test_a_dispatched_incident_offers_the_handlers_actions(client, small_territory, people):
    incident = report()
    incident = perform(incident, "accept", people["chief"])
    from incidents.services.transitions import transition

    incident = transition(incident, "dispatch", people["chief"])
    _response, html = page(client, people["member"], incident)
    assert offered(html) == {"start", "return", "mark_duplicate"}
    _response, html = page(client, people["chief"], incident)
    assert offered(html) == {"start", "return", "defer", "mark_duplicate"}


def test_an_action_moves_the_incident_and_says_so(client, small_territory, people):
    incident = report()
    client.force_login(people["chief"])
    response = post_action(client, incident, "accept", note="属实")
    assert response.status_code == 302 and response.url == f"/incidents/{incident.pk}/"
    incident.refresh_from_db()
    assert incident.state == State.ACCEPTED
    entry = TimelineEntry.objects.filter(incident=incident).last()
    assert (entry.action, entry.note, entry.actor) == ("accept", "属实", people["chief"])
    html = client.get(response.url).content.decode()
    assert "accept (立案): done" in html
    assert "reported → accepted" in html


def test_a_stale_lock_version_is_refused_and_changes_nothing(client, small_territory, people):
    incident = report()
    seen = incident.lock_version
    perform(incident, "verify", people["member"])
    client.force_login(people["chief"])
    response = post_action(client, incident, "accept", lock_version=seen)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.state == State.VERIFIED
    html = client.get(response.url).content.decode()
    assert "was changed by someone else" in html


def test_an_action_the_role_does_not_allow_is_refused(client, small_territory, people):
    incident = report()
    client.force_login(people["member"])
    response = post_action(client, incident, "accept")
    incident.refresh_from_db()
    assert response.status_code == 302 and incident.state == State.REPORTED
    # says why: the role, with the action's name as the page shows it
    html = client.get(response.url).content.decode()
    assert "accept (立案) needs one of these roles: district administrator, grid chief" in html
    response = post_action(client, incident, "close")
    assert "cannot close (结案) an incident that is reported" in client.get(response.url).text


def test_a_reason_is_required_where_the_workflow_needs_one(client, small_territory, people):
    incident = report()
    client.force_login(people["chief"])
    response = post_action(client, incident, "void", note="  ")
    assert response.status_code == 400
    html = response.content.decode()
    form = html.split('class="action action-void"')[1].split("</form>")[0]
    assert "This field is required." in form
    incident.refresh_from_db()
    assert incident.state == State.REPORTED


def test_a_photo_goes_into_the_timeline(client, small_territory, people):
    incident = report()
    client.force_login(people["member"])
    photo = io.BytesIO(PNG)
    photo.name = "site.png"
    response = client.post(
        reverse("incident-detail", args=[incident.pk]),
        {"action": "verify", "verify-lock_version": 0, "verify-photo": photo},
    )
    assert response.status_code == 302
    entry = TimelineEntry.objects.get(incident=incident, action="verify")
    assert entry.photo.name.endswith(".png")
    photo_url = reverse("timeline-photo", args=[incident.pk, entry.pk])
    assert photo_url in client.get(response.url).content.decode()
    served = client.get(photo_url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content) == PNG
    # already compressed: sent as it is to a browser that accepts gzip (the page is not)
    served = client.get(photo_url, HTTP_ACCEPT_ENCODING="gzip")
    assert not served.has_header("Content-Encoding")
    assert served["Content-Length"] == str(len(PNG))
    assert b"".join(served.streaming_content) == PNG
    assert client.get(response.url, HTTP_ACCEPT_ENCODING="gzip")["Content-Encoding"] == "gzip"
    # not to someone who may not see the incident, and not from MEDIA_URL
    client.force_login(people["other"])
    assert client.get(photo_url).status_code == 404
    hidden = client.get(reverse("incident-detail", args=[incident.pk]))
    assert hidden.status_code == 404 and "outside your units" in hidden.text
    chinese = client.get(photo_url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "不在您负责的单元范围内" in chinese.text and 'class="topbar"' in chinese.text
    assert client.get(entry.photo.url).status_code == 404


def test_a_file_that_is_no_image_is_refused_next_to_the_field(client, small_territory, people):
    incident = report()
    client.force_login(people["member"])
    bad = io.BytesIO(b"not an image at all")
    bad.name = "x.png"
    response = client.post(
        reverse("incident-detail", args=[incident.pk]),
        {"action": "verify", "verify-lock_version": 0, "verify-photo": bad},
    )
    assert response.status_code == 400
    assert "is not a JPEG, PNG or WebP image" in response.content.decode()
    incident.refresh_from_db()
    assert incident.state == State.REPORTED


def test_extensions_take_an_amount_and_show_old_and_new_deadline(client, small_territory, people):
    from incidents.services.transitions import transition

    incident = report(reported_at=MONDAY_9)
    incident = perform(incident, "accept", people["chief"])
    incident = transition(incident, "dispatch", people["chief"])
    incident = perform(incident, "start", people["member"])
    _response, html = page(client, people["member"], incident)
    form = html.split('class="action action-request_extension"')[1].split("</form>")[0]
    assert 'name="request_extension-amount"' in form and 'name="request_extension-unit"' in form
    response = post_action(
        client, incident, "request_extension", amount="2", unit="days", note="等配件"
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.state == State.EXTENSION_REQUESTED
    client.force_login(people["chief"])
    old = incident.deadline
    response = post_action(client, incident, "approve_extension")
    incident.refresh_from_db()
    assert incident.state == State.IN_PROGRESS and incident.deadline > old
    html = client.get(response.url).content.decode()
    assert "asked for 2 working days" in html
    new = timezone.localtime(incident.deadline)
    assert f"deadline: 2025-06-10 09:30 → {new:%Y-%m-%d %H:%M}" in html


def test_a_refused_extension_is_said_at_its_form_with_the_input_kept(
    client, small_territory, people
):
    from incidents.services.transitions import transition

    incident = report(reported_at=MONDAY_9)
    incident = perform(incident, "accept", people["chief"])
    incident = transition(incident, "dispatch", people["chief"])
    incident = perform(incident, "start", people["member"])
    client.force_login(people["member"])
    for amount, said in (("0", "must be more than 0"), ("99999", "at most 250 working days")):
        response = post_action(
            client, incident, "request_extension", amount=amount, unit="days", note="等配件"
        )
        assert response.status_code == 400
        form = response.text.split('class="action action-request_extension"')[1]
        form = form.split("</form>")[0]
        assert said in form
        assert f'value="{amount}"' in form and "等配件" in form
        incident.refresh_from_db()
        assert incident.state == State.IN_PROGRESS


def test_dispatch_shows_the_rule_and_the_assignees(client, small_territory, people):
    t = small_territory
    warden = StaffMember.objects.create(name="王网格长")
    StaffAssignment.objects.create(
        member=warden, unit=t["grid1"], role=Role.GRID_CHIEF, start=D2024
    )
    DispatchRule.objects.create(name="井盖 → 网格长", target=DispatchTarget.GRID_CHIEF)
    incident = perform(report(), "accept", people["chief"])
    client.force_login(people["chief"])
    response = post_action(client, incident, "dispatch")
    html = client.get(response.url).content.decode()
    assert "井盖 → 网格长" in html and "王网格长" in html


def test_marking_a_duplicate_needs_the_original_and_links_both(client, small_territory, people):
    first = report()
    second = report(lon=104.0051)
    _response, html = page(client, people["chief"], second)
    duplicates = html.split("Possible duplicates")[1].split("</table>")[0]
    assert f'href="/incidents/{first.pk}/"' in duplicates
    response = post_action(client, second, "mark_duplicate", original=first.pk)
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.state == State.DUPLICATE and second.duplicate_of == first
    _response, html = page(client, people["chief"], first)
    assert f'href="/incidents/{second.pk}/"' in html


def test_duplicates_outside_the_scope_are_not_suggested(
    django_user_model, client, small_territory, people
):
    hidden = report(lon=104.0101)  # micro-grid 21, grid 2
    mine = report(lon=104.0099)  # micro-grid 11, 20 m away
    narrow = login(
        django_user_model, "narrow", GRID_CHIEF, small_territory["grid1"], Role.GRID_CHIEF
    )
    _response, html = page(client, narrow, mine)
    assert f"/incidents/{hidden.pk}/" not in html
    _response, html = page(client, people["chief"], mine)
    assert f"/incidents/{hidden.pk}/" in html


def test_a_near_boundary_incident_can_be_moved_by_its_grid_chief(client, small_territory, people):
    t = small_territory
    incident = report(*NEAR_EDGE)
    _response, html = page(client, people["member"], incident)
    assert "Which unit?" not in html
    _response, html = page(client, people["chief"], incident)
    assert "Which unit?" in html and f'value="{t["micro21"].code}"' in html
    assert outlines(html)[t["micro21"].code] == box(104.01, 30.605, 104.02, 30.61)
    response = client.post(
        reverse("incident-unit", args=[incident.pk]),
        {"decision": "move", "unit": t["micro21"].code, "lock_version": incident.lock_version},
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.unit == t["micro21"] and not incident.near_boundary
    html = client.get(response.url).content.decode()
    assert "moved to another unit" in html and "Which unit?" not in html


def test_a_move_to_a_unit_that_is_no_candidate_changes_nothing(client, small_territory, people):
    t = small_territory
    incident = report(*NEAR_EDGE)
    client.force_login(people["chief"])
    response = client.post(
        reverse("incident-unit", args=[incident.pk]),
        {"decision": "move", "unit": t["micro12"].code, "lock_version": incident.lock_version},
    )
    incident.refresh_from_db()
    assert incident.unit == t["micro11"] and incident.near_boundary
    assert "is not a candidate unit" in client.get(response.url).content.decode()


def test_a_district_admin_assigns_an_unassigned_incident(client, small_territory, people):
    t = small_territory
    incident = report(lon=104.0205)
    assert incident.unit is None
    _response, html = page(client, people["chief"], incident)
    assert "Assign a micro-grid" not in html
    _response, html = page(client, people["admin"], incident)
    assert "Assign a micro-grid" in html and f'value="{t["micro21"].code}"' in html
    client.post(
        reverse("incident-unit", args=[incident.pk]),
        {"decision": "assign", "unit": t["micro21"].code, "lock_version": incident.lock_version},
    )
    incident.refresh_from_db()
    assert incident.unit == t["micro21"] and not incident.unassigned
    assert Incident.objects.filter(pk=incident.pk, grid=t["grid2"]).exists()


def test_an_empty_approval_grants_the_time_asked_for_in_its_unit(client, small_territory, people):
    from incidents.services.transitions import transition

    incident = report(reported_at=MONDAY_9)
    incident = perform(incident, "accept", people["chief"])
    incident = transition(incident, "dispatch", people["chief"])
    incident = perform(incident, "start", people["member"])
    client.force_login(people["member"])
    post_action(client, incident, "request_extension", amount="3", unit="hours", note="等配件")
    incident.refresh_from_db()
    client.force_login(people["chief"])
    page = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert '<option value="" selected>as asked</option>' in page
    # the browser sends the unit select's first option ("as asked") with an empty amount
    post_action(client, incident, "approve_extension", amount="", unit="")
    entry = TimelineEntry.objects.get(incident=incident, action="approve_extension")
    assert (entry.data["amount"], entry.data["unit"]) == ("3", "hours")


def test_a_picture_published_elsewhere_is_a_link_not_an_image(client, small_territory, people):
    incident = report(media_url="https://img.example.org/a.jpg?x=1&y=2")
    _response, html = page(client, people["chief"], incident)
    link = 'href="https://img.example.org/a.jpg?x=1&amp;y=2" rel="noopener noreferrer nofollow"'
    assert link in html
    assert "<img" not in html.split('class="media-link"')[1].split("</p>")[0]
    # whatever the address holds is text on the page
    incident = report(media_url='https://img.example.org/a.jpg?q="><b>x</b>')
    _response, html = page(client, people["chief"], incident)
    assert "<b>x</b>" not in html and "&quot;&gt;&lt;b&gt;x&lt;/b&gt;" in html
    _response, html = page(client, people["chief"], report())
    assert "media-link" not in html
    with pytest.raises(IntakeError, match="media_url"):
        report(media_url="https://img.example.org/a b.jpg")
