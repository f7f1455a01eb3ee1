"""The incident page (issue 3, point 10): facts, map, photos, timeline, duplicates, actions.

The incident comes from incidents_for (404 outside the user's scope). The page offers one
small form per action the user's roles allow in the current state
(incidents.workflow.transitions_from), each with only the inputs that action takes, and the
lock_version the user saw: a POST goes to incidents.services.actions.perform, and a refusal
(wrong state or role, someone else was quicker) is shown as a message with nothing changed.
Near-boundary and unassigned incidents get the unit decisions of
incidents.services.boundary_review.
"""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from grids.models import Unit
from incidents.models import Incident
from incidents.selectors import incidents_for
from incidents.services import boundary_review
from incidents.services.actions import EXTRA_INPUTS, perform
from incidents.services.duplicates import suggest_for
from incidents.services.photos import PhotoError, check_photo
from incidents.services.transitions import roles_of
from incidents.workflow import (
    TRANSITIONS,
    State,
    Transition,
    TransitionRefused,
    check,
    transitions_from,
)
from maps.assets import render_fragment
from maps.builders import Boundary, incident_map

# Actions whose photo goes into the timeline entry (the others take none in perform).
PHOTO_IN_TIMELINE = frozenset(TRANSITIONS) - set(EXTRA_INPUTS) - {"dispatch"}
# Timeline lines that are not transitions.
OTHER_ACTIONS = {
    "report": gettext_lazy("reported"),
    "reassigned": gettext_lazy("moved by a boundary change"),
    "duplicate_linked": gettext_lazy("a duplicate was linked"),
    "unit_confirmed": gettext_lazy("unit confirmed"),
    "unit_moved": gettext_lazy("moved to another unit"),
    "unit_assigned": gettext_lazy("unit assigned"),
}
UNIT_LEVELS = (
    ("street", gettext_lazy("street/town")),
    ("community", gettext_lazy("community/village")),
    ("grid", gettext_lazy("grid")),
    ("unit", gettext_lazy("micro-grid")),
)


class ActionForm(forms.Form):
    """One action on the incident; built with only the fields the action takes."""

    lock_version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    note = forms.CharField(label=gettext_lazy("note"), required=False, widget=forms.Textarea)
    photo = forms.FileField(label=gettext_lazy("photo"), required=False)
    amount = forms.DecimalField(
        label=gettext_lazy("extra working time"), max_digits=8, decimal_places=2, min_value=0
    )
    unit = forms.ChoiceField(
        label=gettext_lazy("in"),
        choices=[("days", gettext_lazy("working days")), ("hours", gettext_lazy("working hours"))],
    )
    original = forms.IntegerField(label=gettext_lazy("original incident number"), min_value=1)

    def __init__(self, transition: Transition, *args, **kwargs):
        kwargs.setdefault("prefix", transition.name)
        super().__init__(*args, **kwargs)
        self.transition = transition
        extra = EXTRA_INPUTS.get(transition.name, ())
        for name in ("amount", "unit", "original"):
            if name not in extra:
                del self.fields[name]
        if transition.name not in PHOTO_IN_TIMELINE:
            del self.fields["photo"]
        if "amount" in self.fields and transition.name == "approve_extension":
            # empty: grant what was asked for
            self.fields["amount"].required = False
            self.fields["unit"].required = False
            self.fields["amount"].help_text = gettext_lazy("empty: the time asked for")
            # no unit chosen: the unit the extension was asked in
            self.fields["unit"].choices = [
                ("", gettext_lazy("as asked")),
                *self.fields["unit"].choices,
            ]
        if transition.needs_note:
            self.fields["note"].required = True
            self.fields["note"].label = gettext_lazy("reason")
        self.fields["note"].widget.attrs["rows"] = 2

    def clean_photo(self):
        photo = self.cleaned_data.get("photo")
        if photo:
            try:
                check_photo(photo)
            except PhotoError as exc:
                raise forms.ValidationError(str(exc)) from None
        return photo


class UnitDecisionForm(forms.Form):
    """Confirm the unit, move to a candidate, or assign a unit (boundary_review)."""

    decision = forms.ChoiceField(
        choices=[("confirm", "confirm"), ("move", "move"), ("assign", "assign")]
    )
    unit = forms.CharField(required=False)
    note = forms.CharField(required=False)
    lock_version = forms.IntegerField(min_value=0)


def _incident(request, pk: int) -> Incident:
    return get_object_or_404(incidents_for(request.user).select_related("boundary_version"), pk=pk)


def _geometry(version) -> dict:
    return json.loads(version.geom.geojson)


def map_boundaries(incident: Incident) -> list[Boundary]:
    """The incident's micro-grid and grid as of the boundary version used, and the candidate
    micro-grids when it is near a boundary."""
    on = boundary_review.placement_date(incident)
    version = incident.boundary_version
    boundaries = []
    for level, role in (("grid", "grid"), ("unit", "microgrid")):
        unit = getattr(incident, level)
        if unit is None:
            continue
        shown = version if version and version.unit_id == unit.pk else unit.version_at(on)
        if shown is not None:
            boundaries.append(Boundary(unit.code, shown.name, _geometry(shown), role))
    if incident.near_boundary:
        for option in boundary_review.candidate_options(incident):
            shown = option.unit.versions.filter(pk=option.boundary_version_id).first()
            shown = shown or option.unit.version_at(on)
            if shown is not None:
                boundaries.append(
                    Boundary(option.unit.code, shown.name, _geometry(shown), "candidate")
                )
    return boundaries


def _timeline(incident: Incident) -> list[dict]:
    lines = []
    for entry in incident.timeline.select_related("actor"):
        transition = TRANSITIONS.get(entry.action)
        data = entry.data or {}
        lines.append(
            {
                "entry": entry,
                "label": transition.label
                if transition
                else OTHER_ACTIONS.get(entry.action, entry.action),
                "from": State(entry.from_state).label if entry.from_state in State.values else "",
                "to": State(entry.to_state).label if entry.to_state in State.values else "",
                "old_deadline": parse_datetime(data.get("old_deadline") or ""),
                "new_deadline": parse_datetime(data.get("new_deadline") or ""),
                "data": data,
            }
        )
    return lines


def _forms(incident: Incident, roles, bound: ActionForm | None = None) -> list[ActionForm]:
    result = []
    for transition in transitions_from(incident.state, roles):
        if bound is not None and bound.transition.name == transition.name:
            result.append(bound)
        else:
            result.append(ActionForm(transition, initial={"lock_version": incident.lock_version}))
    return result


def _page(request, incident: Incident, bound: ActionForm | None = None, status: int = 200):
    user = request.user
    roles = roles_of(user)
    fmap = incident_map(
        (incident.location.x, incident.location.y),
        map_boundaries(incident),
        label=f"#{incident.pk} {incident.category.name}",
    )
    open_ = incident.is_open
    review = open_ and incident.near_boundary and boundary_review.can_review(user)
    assign = open_ and incident.unit_id is None and boundary_review.can_assign(user)
    context = {
        "incident": incident,
        "units": [(label, getattr(incident, level)) for level, label in UNIT_LEVELS],
        "map": render_fragment(fmap),
        "photos": incident.photos.select_related("uploaded_by"),
        "timeline": _timeline(incident),
        "duplicates": suggest_for(incident, user=user),
        "forms": _forms(incident, roles, bound),
        "candidates": boundary_review.candidate_options(incident) if review else [],
        "review": review,
        "assignable": boundary_review.assignable_options(incident, user) if assign else [],
        "assign": assign,
    }
    return render(request, "incidents/detail.html", context, status=status)


@login_required
def incident_detail(request, pk: int):
    incident = _incident(request, pk)
    if request.method == "GET":
        return _page(request, incident)
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    action = request.POST.get("action", "")
    roles = roles_of(request.user)
    allowed = {t.name: t for t in transitions_from(incident.state, roles)}
    if action not in allowed:
        try:  # why not: an unknown action, the state, or the user's roles
            check(action, incident.state, roles, note="-")
            reason = _("%(action)s is not possible now") % {"action": action}
        except TransitionRefused as exc:
            reason = str(exc)
        messages.error(request, reason)
        return redirect("incident-detail", pk=incident.pk)
    form = ActionForm(allowed[action], request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, incident, bound=form, status=400)
    data = form.cleaned_data
    incident.lock_version = data["lock_version"]
    photo = data.get("photo")
    try:
        perform(
            incident,
            action,
            request.user,
            note=data.get("note", ""),
            photo=photo,
            amount=data.get("amount"),
            # no amount or no unit: an approval takes them from the request
            unit=data.get("unit") or None,
            original=data.get("original"),
        )
    except TransitionRefused as exc:
        current = Incident.objects.filter(pk=incident.pk).values_list("lock_version", flat=True)
        if current.first() != data["lock_version"]:  # changed meanwhile: show it as it is now
            messages.error(request, str(exc))
            return redirect("incident-detail", pk=incident.pk)
        # refused for what was entered (an extension too long, a duplicate of itself …):
        # said next to the action, with the input kept
        form.add_error(None, str(exc))
        return _page(request, _incident(request, pk), bound=form, status=400)
    messages.success(request, _("%(action)s: done") % {"action": allowed[action].label})
    return redirect("incident-detail", pk=incident.pk)


@login_required
def incident_unit(request, pk: int):
    """POST: confirm the unit, move to a candidate or assign a unit (boundary_review)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    incident = _incident(request, pk)
    form = UnitDecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("the unit decision was incomplete; nothing changed"))
        return redirect("incident-detail", pk=incident.pk)
    data = form.cleaned_data
    incident.lock_version = data["lock_version"]
    try:
        if data["decision"] == "confirm":
            boundary_review.confirm_unit(incident, request.user, note=data["note"])
            messages.success(request, _("the unit was confirmed"))
        else:
            unit = Unit.objects.filter(code=data["unit"]).first()
            if unit is None:
                raise boundary_review.BoundaryReviewRefused(
                    _("no unit has the code %(code)r") % {"code": data["unit"]}
                )
            decide = (
                boundary_review.move_to_unit
                if data["decision"] == "move"
                else boundary_review.assign_unit
            )
            decide(incident, unit, request.user, note=data["note"])
            messages.success(
                request, _("the incident now belongs to %(unit)s") % {"unit": unit.name}
            )
    except boundary_review.BoundaryReviewRefused as exc:
        messages.error(request, str(exc))
    if not incidents_for(request.user).filter(pk=incident.pk).exists():
        # Moved to a unit outside the user's scope: it is now someone else's.
        messages.info(
            request, _("incident #%(id)s is now outside your units") % {"id": incident.pk}
        )
        return redirect("incident-list")
    return redirect("incident-detail", pk=incident.pk)
