"""One entry point for the actions users make on an incident (pages and API alike).

Most actions are plain transitions (incidents.services.transitions); a few carry more and go
to their own service: dispatch (routing rules), request/approve an extension (amount and
unit; the deadline moves), mark as duplicate (the original incident's number).
"""

from django.utils.translation import gettext as _

from incidents.models import Incident
from incidents.selectors import incidents_for
from incidents.services.dispatch import dispatch
from incidents.services.duplicates import _root, mark_duplicate
from incidents.services.extensions import approve_extension, request_extension
from incidents.services.transitions import transition
from incidents.workflow import TransitionRefused

# The inputs an action takes besides the note (and, for transitions, a photo).
EXTRA_INPUTS = {
    "request_extension": ("amount", "unit"),
    "approve_extension": ("amount", "unit"),
    "mark_duplicate": ("original",),
}


def perform(
    incident: Incident,
    action: str,
    user,
    *,
    note: str = "",
    photo=None,
    amount=None,
    unit: str | None = None,
    original: int | None = None,
) -> Incident:
    """Make `action` on the incident as `user`; TransitionRefused says why it cannot."""
    if action == "dispatch":
        return dispatch(incident, user, note=note)
    if action == "request_extension":
        return request_extension(incident, user, amount=amount, unit=unit or "days", reason=note)
    if action == "approve_extension":
        return approve_extension(incident, user, amount=amount, unit=unit, note=note)
    if action == "mark_duplicate":
        if original in (None, ""):
            raise TransitionRefused(
                _("marking as a duplicate needs the original incident's number")
            )
        try:
            target = incidents_for(user).get(pk=int(original))
        except (Incident.DoesNotExist, TypeError, ValueError):
            raise TransitionRefused(_("there is no incident #%(id)s") % {"id": original}) from None
        root = _root(target)
        if root.pk != target.pk and not incidents_for(user).filter(pk=root.pk).exists():
            raise TransitionRefused(
                _("incident #%(id)s is a duplicate of an incident outside your units")
                % {"id": target.pk}
            )
        return mark_duplicate(incident, target, user, note=note)
    return transition(incident, action, user, note=note, photo=photo)
