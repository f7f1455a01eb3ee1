import datetime

import pytest

from grids.models import StaffAssignment, Unit
from grids.scoping import in_scope, scope_roots

pytestmark = pytest.mark.django_db


def test_scope_is_assigned_units_and_everything_below(small_territory, user_in):
    t = small_territory
    chief = user_in(t["grid1"], "grid_chief")
    visible = set(in_scope(Unit.objects.all(), chief).values_list("code", flat=True))
    assert visible == {t["grid1"].code, t["micro11"].code, t["micro12"].code}


def test_scope_applies_through_a_relation(small_territory, user_in):
    t = small_territory
    chief = user_in(t["grid2"], "grid_chief")
    rows = in_scope(StaffAssignment.objects.all(), chief, "unit")
    assert {a.unit.code for a in rows} == {t["grid2"].code}


def test_several_assignments_add_up(small_territory, user_in):
    t = small_territory
    police = user_in(t["grid1"], "community_police", username="p1")
    StaffAssignment.objects.create(
        member=police.staff,
        unit=t["micro21"],
        role="community_police",
        start=datetime.date(2024, 1, 1),
    )
    visible = set(in_scope(Unit.objects.all(), police).values_list("code", flat=True))
    assert t["micro21"].code in visible and t["micro22"].code not in visible


def test_ended_assignments_give_no_scope(small_territory, user_in):
    member = user_in(small_territory["grid1"], "fulltime_member")
    member.staff.assignments.update(end=datetime.date(2024, 6, 30))
    assert scope_roots(member) == []
    assert not in_scope(Unit.objects.all(), member).exists()


def test_anonymous_sees_nothing_and_superuser_everything(small_territory, admin_user):
    from django.contrib.auth.models import AnonymousUser

    assert not in_scope(Unit.objects.all(), AnonymousUser()).exists()
    assert in_scope(Unit.objects.all(), admin_user).count() == Unit.objects.count()


def test_sibling_codes_that_share_a_prefix_do_not_leak(make_unit, small_territory, user_in):
    # grid "...0011" must not fall under grid "...001" by string prefix
    t = small_territory
    chief = user_in(t["grid1"])
    visible = set(in_scope(Unit.objects.all(), chief).values_list("code", flat=True))
    assert t["grid2"].code not in visible


def test_home_page_lists_only_units_in_scope(client, small_territory, user_in):
    t = small_territory
    client.force_login(user_in(t["grid1"]))
    page = client.get("/").content.decode()
    assert t["micro11"].code in page
    assert t["micro21"].code not in page
    assert client.get(f"/units/{t['micro11'].code}/").status_code == 200
    assert client.get(f"/units/{t['micro21'].code}/").status_code == 404


def test_admin_lists_are_scoped_too(client, small_territory, user_in):
    from django.contrib.auth.models import Permission

    t = small_territory
    chief = user_in(t["grid1"], "grid_chief")
    chief.is_staff = True
    chief.save()
    chief.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_unit", "view_boundaryversion"])
    )
    client.force_login(chief)
    units = client.get("/admin/grids/unit/").content.decode()
    assert t["micro11"].code in units and t["micro21"].code not in units
    versions = client.get("/admin/grids/boundaryversion/").content.decode()
    assert t["micro12"].code in versions and t["grid2"].code not in versions
