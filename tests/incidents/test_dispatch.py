import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group

from grids.models import StaffAssignment, StaffMember
from grids.roles import GRID_CHIEF
from incidents.models import Category, DispatchRule, DispatchTarget
from incidents.services.dispatch import assignees, choose_rule, dispatch
from incidents.services.intake import Report, report_incident
from incidents.services.transitions import transition
from incidents.workflow import State, TransitionRefused
from tests.conftest import D2024, rect

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
TODAY = datetime.date(2025, 6, 9)
SIBLING = "510199001002"  # a second community of the street


@pytest.fixture
def categories():
    # Seeded by migrations; a transactional test run before this one may have flushed them.
    from grids.roles import sync_groups
    from incidents.categories import load_seed

    if not Category.objects.filter(code="C0101").exists():
        load_seed()
        sync_groups()
    return {
        "manhole": Category.objects.get(code="C0101"),  # 01 公用设施, not police relevant
        "camera": Category.objects.get(code="C0108"),  # 01 公用设施, police relevant
        "rubbish": Category.objects.get(code="E0102"),  # event 01 市容环境
    }


@pytest.fixture
def chief(django_user_model, categories):
    user = django_user_model.objects.create_user("chief", password="pw-123456")
    user.groups.add(Group.objects.get(name=GRID_CHIEF))
    return user


@pytest.fixture
def sibling(small_territory, make_unit):
    """A second community of the same street, with one grid and one micro-grid."""
    street = small_territory["street"]
    community = make_unit("community", SIBLING, rect(104.03, 30.60, 104.04, 30.61), parent=street)
    grid = make_unit("grid", f"{SIBLING}001", rect(104.03, 30.60, 104.04, 30.61), parent=community)
    micro = make_unit(
        "microgrid", f"{grid.code}01", rect(104.03, 30.60, 104.04, 30.61), parent=grid
    )
    return {"community": community, "grid": grid, "micro": micro}


def report(category, lon=104.005, lat=30.607):
    return report_incident(
        Report(lon=lon, lat=lat, category=category, source="patrol", reported_at=MONDAY_9)
    )


def accepted(chief, category, **where):
    return transition(report(category, **where), "accept", chief, note="立案")


def staff(name, unit, role, start=D2024, end=None):
    member = StaffMember.objects.create(name=name)
    StaffAssignment.objects.create(member=member, unit=unit, role=role, start=start, end=end)
    return member


def rule(order, name, target=DispatchTarget.GRID_CHIEF, **conditions):
    return DispatchRule.objects.create(order=order, name=name, target=target, **conditions)


def test_first_matching_rule_by_order_wins(small_territory, categories):
    later = rule(20, "later")
    first = rule(10, "first")
    rule(10, "same order, created later")
    assert choose_rule(report(categories["manhole"])) == first
    first.delete()
    assert choose_rule(report(categories["manhole"])).name == "same order, created later"
    DispatchRule.objects.filter(order=10).delete()
    assert choose_rule(report(categories["manhole"])) == later


def test_police_relevant_category_goes_to_the_community_police(small_territory, categories):
    police = rule(10, "治安 → 民警", DispatchTarget.COMMUNITY_POLICE, police_relevant=True)
    general = rule(20, "其他 → 网格长")
    not_police = rule(5, "非治安 → 网格员", DispatchTarget.GRID_MEMBERS, police_relevant=False)
    officer = staff("李警官", small_territory["community"], "community_police")
    incident = report(categories["camera"])
    assert choose_rule(incident) == police
    assert assignees(police, incident, on=TODAY) == [officer]
    assert choose_rule(report(categories["manhole"])) == not_police
    not_police.delete()
    assert choose_rule(report(categories["manhole"])) == general


def test_unit_rule_matches_its_subtree_only(small_territory, sibling, categories):
    community = small_territory["community"]
    here = rule(10, "花园社区", DispatchTarget.DEPARTMENT, unit=community, department="社区工作站")
    fallback = rule(20, "全区", DispatchTarget.DEPARTMENT, department="城管执法局")
    in_micro = report(categories["manhole"])
    in_sibling = report(categories["manhole"], lon=104.035, lat=30.605)
    assert in_micro.unit == small_territory["micro11"]
    assert in_sibling.unit == sibling["micro"]
    assert choose_rule(in_micro) == here
    assert choose_rule(in_sibling) == fallback
    # a rule on a grid: its micro-grids match, the other grid's do not
    DispatchRule.objects.filter(pk=here.pk).update(unit=small_territory["grid2"])
    assert choose_rule(in_micro) == fallback
    assert choose_rule(report(categories["manhole"], lon=104.015)) == here


def test_category_rule_beats_a_general_rule_placed_later(small_territory, categories):
    specific = rule(
        10,
        "井盖 → 市政",
        DispatchTarget.DEPARTMENT,
        category=categories["manhole"],
        department="市政局",
    )
    major = rule(15, "市容环境", DispatchTarget.GRID_MEMBERS, major="01")
    general = rule(20, "其他")
    assert choose_rule(report(categories["manhole"])) == specific
    assert choose_rule(report(categories["camera"])) == major  # component 01 as well
    DispatchRule.objects.filter(pk=major.pk).update(major="02")
    assert choose_rule(report(categories["camera"])) == general


def test_inactive_rules_are_skipped(small_territory, categories):
    rule(10, "停用", active=False)
    used = rule(20, "在用")
    assert choose_rule(report(categories["manhole"])) == used
    DispatchRule.objects.filter(pk=used.pk).update(active=False)
    assert choose_rule(report(categories["manhole"])) is None


def test_assignees_are_the_staff_assigned_that_day(small_territory, categories):
    grid = small_territory["grid1"]
    incident = report(categories["manhole"])
    old_chief = staff("老王", grid, "grid_chief", end=datetime.date(2025, 5, 31))
    new_chief = staff("小张", grid, "grid_chief", start=datetime.date(2025, 6, 1))
    staff("别的网格长", small_territory["grid2"], "grid_chief")
    full = staff("专职甲", grid, "fulltime_member")
    part = staff("兼职乙", grid, "parttime_member")
    staff("离职丙", grid, "fulltime_member", end=datetime.date(2025, 1, 1))
    staff("楼栋长", grid, "building_head")
    chief_rule = rule(10, "网格长")
    members_rule = rule(20, "网格员", DispatchTarget.GRID_MEMBERS)
    assert assignees(chief_rule, incident, on=TODAY) == [new_chief]
    assert assignees(chief_rule, incident, on=datetime.date(2025, 5, 1)) == [old_chief]
    assert set(assignees(members_rule, incident, on=TODAY)) == {full, part}
    department = rule(30, "部门", DispatchTarget.DEPARTMENT, department="城管执法局")
    assert assignees(department, incident, on=TODAY) == []


def test_dispatch_records_rule_and_assignees_in_the_timeline(small_territory, categories, chief):
    grid_chief = staff("小张", small_territory["grid1"], "grid_chief")
    chosen = rule(10, "网格长负责")
    incident = accepted(chief, categories["manhole"])
    assert incident.state == State.ACCEPTED
    incident = dispatch(incident, chief, note="请处理")
    assert incident.state == State.DISPATCHED
    entry = incident.timeline.last()
    assert (entry.action, entry.from_state, entry.to_state, entry.note) == (
        "dispatch",
        "accepted",
        "dispatched",
        "请处理",
    )
    assert entry.data == {
        "rule": chosen.pk,
        "rule_name": "网格长负责",
        "target": "grid_chief",
        "assignees": [{"id": grid_chief.pk, "name": "小张"}],
        "department": "",
    }


def test_dispatch_to_a_department_records_its_name(small_territory, categories, chief):
    rule(10, "市容环境 → 城管", DispatchTarget.DEPARTMENT, major="01", department="城管执法局")
    incident = dispatch(accepted(chief, categories["rubbish"]), chief)
    data = incident.timeline.last().data
    assert (data["target"], data["department"], data["assignees"]) == (
        "department",
        "城管执法局",
        [],
    )


def test_no_matching_rule_is_refused_and_nothing_changes(small_territory, categories, chief):
    rule(10, "只管摄像头", category=categories["camera"])
    incident = accepted(chief, categories["manhole"])
    with pytest.raises(TransitionRefused) as refused:
        dispatch(incident, chief)
    assert str(refused.value) == (
        f"no dispatch rule matches incident #{incident.pk} "
        f"(category C0101, unit {small_territory['micro11'].code})"
    )
    incident.refresh_from_db()
    assert incident.state == State.ACCEPTED
    assert incident.timeline.last().action == "accept"


def test_a_department_rule_needs_the_department(categories):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="name the department"):
        DispatchRule(order=1, name="x", target=DispatchTarget.DEPARTMENT).full_clean()


def test_admin_lists_the_rules_in_order(admin_client, small_territory, categories):
    rule(20, "第二条")
    rule(10, "第一条", DispatchTarget.DEPARTMENT, department="城管执法局")
    page = admin_client.get("/admin/incidents/dispatchrule/").content.decode()
    assert page.index("第一条") < page.index("第二条")
    assert admin_client.get("/admin/incidents/dispatchrule/add/").status_code == 200
