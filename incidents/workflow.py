"""The closed loop (DOMAIN.md §4): incident states and the one table of allowed transitions.

Every change of state goes through this table: the transition's name, the states it may
start from, the state it leads to, and the login groups (grids.roles) allowed to make it.
Anything else is refused with a message that says what was asked, from which state and by
whom. The main line is

    reported → verified → accepted (立案) → dispatched → in progress → handled → checked → closed

with the side branches seen in real platforms: returned (退回, with a reason), extension
requested/approved (延期), deferred (缓办), parked (挂账), rework (返工, check failed), void
(作废), duplicate (重复) and self-resolved (自行处置) by the grid member who found it.

`department` stands for the handling department an incident is dispatched to (its staff act
through the assignee check of the incident service, not through a login group).
"""

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER, GROUP_LABELS, POLICE_LIAISON

DEPARTMENT = "department"


class State(models.TextChoices):
    REPORTED = "reported", gettext_lazy("reported")
    VERIFIED = "verified", gettext_lazy("verified")
    ACCEPTED = "accepted", gettext_lazy("accepted")
    DISPATCHED = "dispatched", gettext_lazy("dispatched")
    IN_PROGRESS = "in_progress", gettext_lazy("in progress")
    EXTENSION_REQUESTED = "extension_requested", gettext_lazy("extension requested")
    HANDLED = "handled", gettext_lazy("handled")
    CHECKED = "checked", gettext_lazy("checked")
    CLOSED = "closed", gettext_lazy("closed")
    RETURNED = "returned", gettext_lazy("returned")
    DEFERRED = "deferred", gettext_lazy("deferred")
    PARKED = "parked", gettext_lazy("parked")
    REWORK = "rework", gettext_lazy("rework")
    SELF_RESOLVED = "self_resolved", gettext_lazy("self-resolved")
    VOID = "void", gettext_lazy("void")
    DUPLICATE = "duplicate", gettext_lazy("duplicate")


FINAL_STATES = frozenset({State.CLOSED, State.VOID, State.DUPLICATE})
OPEN_STATES = frozenset(State) - FINAL_STATES

HANDLERS = (GRID_MEMBER, GRID_CHIEF, POLICE_LIAISON, DEPARTMENT)
SUPERVISORS = (GRID_CHIEF, DISTRICT_ADMIN)


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset
    target: str
    roles: frozenset
    label: str
    needs_note: bool = False  # a reason is required (returns, voids, failed checks, …)


def _t(name, sources, target, roles, label, needs_note=False) -> Transition:
    return Transition(name, frozenset(sources), target, frozenset(roles), label, needs_note)


S = State
TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in [
        _t(
            "verify",
            [S.REPORTED],
            S.VERIFIED,
            [GRID_MEMBER, GRID_CHIEF, DISTRICT_ADMIN],
            gettext_lazy("verify"),
        ),
        _t(
            "accept",
            [S.REPORTED, S.VERIFIED],
            S.ACCEPTED,
            SUPERVISORS,
            gettext_lazy("accept (立案)"),
        ),
        _t(
            "dispatch",
            [S.ACCEPTED, S.RETURNED],
            S.DISPATCHED,
            SUPERVISORS,
            gettext_lazy("dispatch"),
        ),
        _t(
            "start",
            [S.DISPATCHED, S.REWORK],
            S.IN_PROGRESS,
            HANDLERS,
            gettext_lazy("start handling"),
        ),
        _t(
            "return",
            [S.DISPATCHED, S.IN_PROGRESS],
            S.RETURNED,
            HANDLERS,
            gettext_lazy("return (not ours)"),
            needs_note=True,
        ),
        _t(
            "request_extension",
            [S.IN_PROGRESS],
            S.EXTENSION_REQUESTED,
            HANDLERS,
            gettext_lazy("request an extension"),
            needs_note=True,
        ),
        _t(
            "approve_extension",
            [S.EXTENSION_REQUESTED],
            S.IN_PROGRESS,
            SUPERVISORS,
            gettext_lazy("approve the extension"),
        ),
        _t(
            "refuse_extension",
            [S.EXTENSION_REQUESTED],
            S.IN_PROGRESS,
            SUPERVISORS,
            gettext_lazy("refuse the extension"),
            needs_note=True,
        ),
        _t(
            "defer",
            [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS],
            S.DEFERRED,
            SUPERVISORS,
            gettext_lazy("defer (缓办)"),
            needs_note=True,
        ),
        _t("resume", [S.DEFERRED, S.PARKED], S.DISPATCHED, SUPERVISORS, gettext_lazy("resume")),
        _t(
            "park",
            [S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS, S.DEFERRED],
            S.PARKED,
            [DISTRICT_ADMIN],
            gettext_lazy("park as long-term backlog (挂账)"),
            needs_note=True,
        ),
        _t("handle", [S.IN_PROGRESS], S.HANDLED, HANDLERS, gettext_lazy("report handled")),
        _t(
            "check",
            [S.HANDLED],
            S.CHECKED,
            [GRID_MEMBER, GRID_CHIEF],
            gettext_lazy("check on site: passed"),
        ),
        _t(
            "rework",
            [S.HANDLED],
            S.REWORK,
            [GRID_MEMBER, GRID_CHIEF],
            gettext_lazy("check on site: failed, rework"),
            needs_note=True,
        ),
        _t(
            "close",
            [S.CHECKED, S.SELF_RESOLVED],
            S.CLOSED,
            SUPERVISORS,
            gettext_lazy("close (结案)"),
        ),
        _t(
            "self_resolve",
            [S.REPORTED],
            S.SELF_RESOLVED,
            [GRID_MEMBER, GRID_CHIEF],
            gettext_lazy("resolved on the spot (自行处置)"),
        ),
        _t(
            "void",
            [S.REPORTED, S.VERIFIED, S.ACCEPTED],
            S.VOID,
            SUPERVISORS,
            gettext_lazy("void (作废)"),
            needs_note=True,
        ),
        _t(
            "mark_duplicate",
            OPEN_STATES,
            S.DUPLICATE,
            [GRID_MEMBER, *SUPERVISORS],
            gettext_lazy("mark as duplicate"),
        ),
    ]
}


class TransitionRefused(Exception):
    """A transition the table does not allow; the message says what, from where and who."""


def transitions_from(state: str, roles) -> list[Transition]:
    """The transitions someone with `roles` may make from `state`, in table order."""
    roles = set(roles)
    return [t for t in TRANSITIONS.values() if state in t.sources and roles & t.roles]


def check(name: str, state: str, roles, note: str = "") -> Transition:
    """The transition `name` from `state`, or TransitionRefused saying why not."""
    transition = TRANSITIONS.get(name)
    if transition is None:
        raise TransitionRefused(
            _("unknown action %(name)r; known actions: %(known)s")
            % {"name": name, "known": ", ".join(TRANSITIONS)}
        )
    if state not in transition.sources:
        raise TransitionRefused(
            _("cannot %(action)s an incident that is %(state)s (allowed from: %(sources)s)")
            % {
                "action": transition.label,
                "state": State(state).label,
                "sources": ", ".join(str(State(s).label) for s in sorted(transition.sources)),
            }
        )
    if not set(roles) & transition.roles:
        names = sorted(str(GROUP_LABELS.get(r, r)) for r in transition.roles)
        raise TransitionRefused(
            _("%(action)s needs one of these roles: %(roles)s")
            % {"action": transition.label, "roles": ", ".join(names)}
        )
    if transition.needs_note and not note.strip():
        raise TransitionRefused(_("%(action)s needs a reason") % {"action": transition.label})
    return transition
