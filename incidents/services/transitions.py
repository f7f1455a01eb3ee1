"""Moving an incident through the closed loop: one function, one transaction, one winner.

`transition` checks the action against incidents.workflow (state and role), then moves the
state with a conditional UPDATE on `lock_version`: of two transitions started from the same
version, exactly one changes the row; the other is refused as stale. This holds on PostGIS
(row lock as well) and on SpatiaLite (where SELECT … FOR UPDATE does not exist).
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from incidents.models import Incident, TimelineEntry
from incidents.workflow import FINAL_STATES, State, TransitionRefused, check


def roles_of(user) -> set[str]:
    """The login groups of a user (the role names the workflow table uses)."""
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(user.groups.values_list("name", flat=True))


@transaction.atomic
def transition(
    incident: Incident,
    action: str,
    user,
    *,
    note: str = "",
    photo=None,
    data: dict | None = None,
    roles: set[str] | None = None,
    changes: dict | None = None,
) -> Incident:
    """Make `action` on the incident as `user`; returns the incident as it is now.

    `incident.lock_version` is the version the user saw: if someone else moved the incident
    since, TransitionRefused says so and nothing changes. `changes` are further fields set in
    the same conditional UPDATE (an approved extension's new deadline).
    """
    roles = roles_of(user) if roles is None else roles
    seen = incident.lock_version
    current = Incident.objects.select_for_update().get(pk=incident.pk)
    if current.lock_version != seen:
        raise TransitionRefused(
            _("incident #%(id)s was changed by someone else (now %(state)s); reload it")
            % {"id": incident.pk, "state": State(current.state).label}
        )
    step = check(action, current.state, roles, note)
    changes = {**(changes or {}), "state": step.target, "lock_version": F("lock_version") + 1}
    if step.target in FINAL_STATES:
        changes["closed_at"] = timezone.now()
    moved = Incident.objects.filter(pk=incident.pk, lock_version=seen).update(**changes)
    if moved != 1:
        raise TransitionRefused(
            _("incident #%(id)s was changed by someone else; reload it") % {"id": incident.pk}
        )
    TimelineEntry.objects.create(
        incident=current,
        actor=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        from_state=current.state,
        to_state=step.target,
        note=note,
        photo=photo or "",
        data=data or {},
    )
    current.refresh_from_db()
    return current
