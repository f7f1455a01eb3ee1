"""Deadline extensions (延期): asked for by the handler, approved or refused by a supervisor.

A request records the extra working time asked for (amount and unit, hours or days) in its
timeline entry. An approval moves the deadline by that amount — or by the amount the
supervisor grants instead — counted in working time from the current deadline
(incidents.working_time.extend), moves the "3× overdue" moment with it, and records the old
and new deadlines in its timeline entry. The new deadline is written in the same conditional
UPDATE as the state, so two approvals cannot both extend.
"""

from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from incidents.models import Incident, TimelineEntry
from incidents.services.transitions import transition
from incidents.workflow import TransitionRefused
from incidents.working_time import (
    UNITS,
    Deadline,
    WorkingCalendar,
    extend,
    three_times_overdue_at,
)

# About a working year: longer is a different decision (defer or park the incident).
MAX_EXTENSION = {"days": 250, "hours": 2000}


def _amount(amount, unit) -> tuple[Decimal, str]:
    """The amount and unit checked: a positive number of hours, a whole number of days."""
    if unit not in UNITS:
        raise TransitionRefused(
            _("the extension unit must be one of %(known)s, not %(unit)r")
            % {"known": ", ".join(UNITS), "unit": unit}
        )
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        raise TransitionRefused(
            _("the extension amount %(amount)r is not a number") % {"amount": amount}
        ) from None
    if not value.is_finite() or value <= 0:
        raise TransitionRefused(
            _("the extension amount must be more than 0, not %(amount)s") % {"amount": amount}
        )
    if value > MAX_EXTENSION[unit]:
        raise TransitionRefused(
            _("an extension can be at most %(most)s %(unit)s, not %(amount)s")
            % {
                "most": MAX_EXTENSION[unit],
                "unit": _("working days") if unit == "days" else _("working hours"),
                "amount": amount,
            }
        )
    if unit == "days" and value != value.to_integral_value():
        raise TransitionRefused(
            _("an extension in working days must be a whole number, not %(amount)s")
            % {"amount": amount}
        )
    return value, unit


def request_extension(incident: Incident, user, *, amount, unit: str, reason: str) -> Incident:
    """Ask for `amount` more working hours/days; the reason is required."""
    value, unit = _amount(amount, unit)
    return transition(
        incident,
        "request_extension",
        user,
        note=reason,
        data={"amount": str(value), "unit": unit},
    )


def requested(incident: Incident) -> dict | None:
    """The pending request's {"amount", "unit"} (from its timeline entry), or None."""
    entry = (
        TimelineEntry.objects.filter(incident=incident, action="request_extension")
        .order_by("-at", "-id")
        .first()
    )
    return entry.data if entry else None


def approve_extension(
    incident: Incident, user, *, amount=None, unit: str | None = None, note: str = ""
) -> Incident:
    """Approve the pending request, moving the deadline by the amount asked for (or by
    `amount` `unit` when given; a missing one of the two is taken from the request)."""
    if amount in (None, "") or not unit:
        asked = requested(incident) or {}
        if amount in (None, ""):
            amount = asked.get("amount")
        unit = unit or asked.get("unit")
        if amount is None:
            raise TransitionRefused(
                _("incident #%(id)s has no extension request to approve; give an amount")
                % {"id": incident.pk}
            )
    value, unit = _amount(amount, unit or "days")
    if incident.deadline is None:
        raise TransitionRefused(_("incident #%(id)s has no deadline") % {"id": incident.pk})
    calendar = WorkingCalendar.from_settings()
    number = int(value) if unit == "days" else float(value)
    moved = extend(Deadline(due=incident.deadline), number, unit, calendar)
    data = {
        "amount": str(value),
        "unit": unit,
        "old_deadline": incident.deadline.isoformat(),
        "new_deadline": moved.due.isoformat(),
    }
    changes = {
        "deadline": moved.due,
        "overdue_3x_at": three_times_overdue_at(incident.reported_at, moved.due, calendar),
    }
    if moved.warning():
        changes["deadline_note"] = moved.warning()
    return transition(incident, "approve_extension", user, note=note, data=data, changes=changes)


def extensions_of(incident: Incident) -> list[dict]:
    """The approved extensions: [{"at", "by", "amount", "unit", "old", "new"}], oldest first."""
    result = []
    for entry in TimelineEntry.objects.filter(
        incident=incident, action="approve_extension"
    ).select_related("actor"):
        result.append(
            {
                "at": entry.at,
                "by": entry.actor,
                "amount": entry.data.get("amount"),
                "unit": entry.data.get("unit"),
                "old": parse_datetime(entry.data.get("old_deadline", "")),
                "new": parse_datetime(entry.data.get("new_deadline", "")),
            }
        )
    return result
