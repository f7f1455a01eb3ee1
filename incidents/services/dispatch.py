"""Dispatch routing (派遣): ordered rules choose who gets a new incident.

`choose_rule` tries the active DispatchRules in `order` (ties by id) and returns the first
whose conditions all hold; `assignees` resolves the rule's target to the staff assigned today;
`dispatch` makes the "dispatch" transition and records the rule and the assignees in the
timeline entry's data:

    {"rule": 3, "rule_name": "治安类 → 社区民警", "target": "community_police",
     "assignees": [{"id": 7, "name": "李警官"}], "department": ""}
"""

import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from grids.models import Role, StaffAssignment, StaffMember
from incidents.models import DispatchRule, DispatchTarget, Incident
from incidents.services.transitions import transition
from incidents.workflow import TransitionRefused

# The role a target resolves to, and on which of the incident's units.
TARGET_ROLES = {
    DispatchTarget.GRID_CHIEF: ("grid", [Role.GRID_CHIEF]),
    DispatchTarget.GRID_MEMBERS: ("grid", [Role.FULLTIME_MEMBER, Role.PARTTIME_MEMBER]),
    DispatchTarget.COMMUNITY_POLICE: ("community", [Role.COMMUNITY_POLICE]),
}


def deepest_unit(incident: Incident):
    """The smallest unit the incident was geotagged into (micro-grid, grid, community, street)."""
    return incident.unit or incident.grid or incident.community or incident.street


def matches(rule: DispatchRule, incident: Incident) -> bool:
    """Whether every condition of the rule holds for the incident (empty conditions hold)."""
    category = incident.category
    if rule.category_id is not None and rule.category_id != incident.category_id:
        return False
    if rule.major and rule.major != category.major:
        return False
    if rule.police_relevant is not None and rule.police_relevant != category.police_relevant:
        return False
    if rule.unit_id is not None:
        unit = deepest_unit(incident)
        if unit is None or not unit.path.startswith(rule.unit.path):
            return False
    return True


def choose_rule(incident: Incident) -> DispatchRule | None:
    """The first active rule, in `order` then id, whose conditions all match; or None."""
    rules = DispatchRule.objects.filter(active=True).select_related("unit").order_by("order", "id")
    return next((rule for rule in rules if matches(rule, incident)), None)


def assignees(
    rule: DispatchRule, incident: Incident, on: datetime.date | None = None
) -> list[StaffMember]:
    """The staff the rule sends the incident to, as assigned on `on` (default today).

    A department target names no staff (the department is recorded by name); a target on a
    unit the incident lacks (e.g. unassigned incidents have no grid) gives an empty list.
    """
    if rule.target not in TARGET_ROLES:
        return []
    on = on or timezone.localdate()
    level, roles = TARGET_ROLES[rule.target]
    unit_id = getattr(incident, f"{level}_id")
    if unit_id is None:
        return []
    member_ids = (
        StaffAssignment.objects.active_on(on)
        .filter(unit_id=unit_id, role__in=roles)
        .values("member_id")
    )
    return list(StaffMember.objects.filter(pk__in=member_ids).order_by("name", "id"))


def dispatch(incident: Incident, user, note: str = "", on: datetime.date | None = None) -> Incident:
    """Dispatch the incident by the first matching rule; TransitionRefused if none matches."""
    rule = choose_rule(incident)
    if rule is None:
        unit = deepest_unit(incident)
        raise TransitionRefused(
            _("no dispatch rule matches incident #%(id)s (category %(category)s, unit %(unit)s)")
            % {
                "id": incident.pk,
                "category": incident.category.code,
                "unit": unit.code if unit else _("unassigned"),
            }
        )
    people = assignees(rule, incident, on=on)
    data = {
        "rule": rule.pk,
        "rule_name": rule.name,
        "target": rule.target,
        "assignees": [{"id": member.pk, "name": member.name} for member in people],
        "department": rule.department,
    }
    return transition(incident, "dispatch", user, note=note, data=data)
