import html
import re

import pytest
from django.contrib.auth.models import Group

from grids.roles import GROUP_PERMISSIONS

pytestmark = pytest.mark.django_db


def test_login_and_logout(client, django_user_model):
    django_user_model.objects.create_user("chief", password="pw-123456")
    assert client.get("/").status_code == 302  # to the login page
    response = client.post("/login/", {"username": "chief", "password": "pw-123456"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused(client, django_user_model):
    django_user_model.objects.create_user("chief", password="pw-123456")
    response = client.post("/login/", {"username": "chief", "password": "nope"})
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated


def test_groups_exist_with_their_permissions():
    for name, perms in GROUP_PERMISSIONS.items():
        group = Group.objects.get(name=name)
        have = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert have == set(perms)


def test_pages_are_chinese_by_default_and_english_on_request(
    client, settings, small_territory, admin_user
):
    settings.LANGUAGE_CODE = "zh-hans"
    client.force_login(admin_user)
    chinese = client.get("/", HTTP_ACCEPT_LANGUAGE="").content.decode()
    assert "我的单元" in chinese and "网格" in chinese
    english = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "My units" in english


def test_admin_map_widget_assets_are_served_by_the_app(client, admin_user, small_territory):
    client.force_login(admin_user)
    version = small_territory["grid1"].current_version()
    page = client.get(f"/admin/grids/boundaryversion/{version.pk}/change/").content.decode()
    assert "vendor/ol-7.2.2/ol.js" in page
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page)
    assert external == []
    assert "new ol.source.OSM" not in page  # no tile server either


def test_admin_lists_every_territory_model(client, admin_user, small_territory):
    client.force_login(admin_user)
    for model in (
        "unit",
        "boundaryversion",
        "staffmember",
        "staffassignment",
        "partybranch",
        "workstation",
        "servicestation",
    ):
        assert client.get(f"/admin/grids/{model}/").status_code == 200, model
    assert client.get("/admin/grids/workstation/add/").status_code == 200


def admin_form_data(page: str) -> dict:
    """The values an admin change form would post as it is (inputs and textareas)."""
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    for name, value in re.findall(r'<input type="text" name="([^"]+)" value="([^"]*)"', page):
        data[name] = value
    for name, value in re.findall(
        r'<textarea[^>]* name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S
    ):
        data[name] = html.unescape(value).strip()
    data.pop("csrfmiddlewaretoken", None)
    return data


def test_the_admin_refuses_to_redraw_a_saved_version_in_place(client, admin_user, small_territory):
    client.force_login(admin_user)
    version = small_territory["grid1"].current_version()
    before = version.geom.wkt
    url = f"/admin/grids/boundaryversion/{version.pk}/change/"
    form = admin_form_data(client.get(url).content.decode())
    moved = version.geom.buffer(0.001)
    response = client.post(url, {**form, "geom": moved.ewkt, "reason": "moved by hand"})
    assert response.status_code == 200  # the form again, with the error
    assert "cannot be changed here" in response.content.decode()
    version.refresh_from_db()
    assert version.geom.wkt == before and version.reason != "moved by hand"
    # the reason alone may still be edited
    response = client.post(url, {**form, "reason": "typo fixed"})
    assert response.status_code == 302, (
        response.context["adminform"].form.errors,
        [f.formset.errors for f in response.context["inline_admin_formsets"]],
    )
    version.refresh_from_db()
    assert version.reason == "typo fixed" and version.geom.wkt == before
