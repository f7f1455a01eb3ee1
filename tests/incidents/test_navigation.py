"""The top navigation offers the incident pages the user's roles open."""

import pytest
from django.contrib.auth.models import Group

from grids.roles import GRID_MEMBER, POLICE_LIAISON

pytestmark = pytest.mark.django_db


def nav_of(client, user) -> str:
    client.force_login(user)
    page = client.get("/incidents/").content.decode()
    return page.split("<nav>", 1)[1].split("</nav>", 1)[0]


@pytest.mark.parametrize(
    ("group", "report", "police"),
    [(GRID_MEMBER, True, False), (POLICE_LIAISON, False, True), (None, False, False)],
)
def test_links_follow_the_role(client, django_user_model, seeded, group, report, police):
    user = django_user_model.objects.create_user("u", password="pw-123456")
    if group:
        user.groups.add(Group.objects.get(name=group))
    nav = nav_of(client, user)
    assert 'href="/incidents/"' in nav
    assert ('href="/incidents/new"' in nav) is report
    assert ('href="/incidents/police"' in nav) is police
    # and the pages behind the hidden links refuse
    if not report:
        assert client.get("/incidents/new").status_code == 403
    if not police:
        assert client.get("/incidents/police").status_code == 403


def test_a_superuser_without_a_reporting_role_is_not_offered_the_report_form(
    client, django_user_model, seeded
):
    admin = django_user_model.objects.create_superuser("root", password="pw-123456")
    nav = nav_of(client, admin)
    assert 'href="/incidents/police"' in nav
    assert 'href="/incidents/new"' not in nav
    assert client.get("/incidents/new").status_code == 403
