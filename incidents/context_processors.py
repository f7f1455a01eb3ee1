"""Template context for the navigation: which incident pages the user's roles open."""

from grids.scoping import sees_everything
from incidents.services.transitions import roles_of
from incidents.views.police import ROLES as POLICE_PAGE_ROLES
from incidents.views.report import REPORTERS


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    roles = roles_of(user)
    return {
        # as the report page decides: reporting is a workflow role, not a superuser power
        "nav_may_report": bool(roles & REPORTERS),
        "nav_may_police": sees_everything(user) or bool(roles & POLICE_PAGE_ROLES),
    }
