"""The one scoping function: every list, export, API list and map layer that shows
territory-bound rows goes through `in_scope`, so no page can show more than a user may see.

A user's scope is the units their staff member is assigned to today, and everything below
them (by the materialised path). Superusers see everything; anonymous users nothing.
"""

import datetime
from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet

from grids.models import StaffAssignment, Unit


def scope_roots(user, at: datetime.date | None = None) -> list[Unit]:
    """The units the user is assigned to on `at` (default today)."""
    if not getattr(user, "is_authenticated", False):
        return []
    at = at or datetime.date.today()
    unit_ids = StaffAssignment.objects.active_on(at).filter(member__user=user).values("unit")
    return list(Unit.objects.filter(pk__in=unit_ids).only("id", "path", "code", "name", "kind"))


def sees_everything(user) -> bool:
    return bool(getattr(user, "is_superuser", False) and user.is_active)


def scope_key(user) -> tuple:
    """What the user's scope is made of today, for keys of kept answers: everything (a
    superuser), or the (id, path) of the units it starts from (none: nothing). Together
    with the units' own state (grids.models.revision) it fixes which units `in_scope`
    lets through."""
    if sees_everything(user):
        return ("everything",)
    return tuple(sorted((unit.id, unit.path) for unit in scope_roots(user)))


def in_scope(queryset: QuerySet, user, unit_field: str | None = None) -> QuerySet:
    """Limit `queryset` to rows whose unit is in the user's scope.

    `unit_field` is the lookup path from the queryset's model to a Unit ("unit",
    "incident__unit", ...); leave it None when the queryset is of Units.
    """
    if sees_everything(user):
        return queryset
    roots = scope_roots(user)
    if not roots:
        return queryset.none()
    prefix = f"{unit_field}__" if unit_field else ""
    condition = reduce(or_, (Q(**{f"{prefix}path__startswith": u.path}) for u in roots))
    return queryset.filter(condition)
