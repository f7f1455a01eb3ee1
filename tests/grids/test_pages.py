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
