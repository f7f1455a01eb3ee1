"""The report form (issue 3, point 11): a new incident from a grid member, chief or admin.

The point is picked on the map (Leaflet fills lon/lat in WGS84) or typed with its coordinate
system. Before saving, possible duplicates are looked up — in the browser through
GET /api/incidents/duplicates as soon as point and category are set, and again on the server:
if there are any and "not a duplicate" is not ticked, the form comes back with them instead of
being saved (so it works without JavaScript). Intake is incidents.services.intake; photos
are checked (incidents.services.photos) before anything is written, and the incident and its
photos are saved in one transaction. Bad input comes back next to its field.
"""

import json
from itertools import groupby

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from gis import crs as crs_tools
from grids.kinds import UnitKind
from grids.models import BoundaryVersion, Unit
from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER
from grids.scoping import in_scope, scope_roots
from incidents.geotagging import geotag_point
from incidents.models import MAX_DESCRIPTION, Category, InputCRS, Source
from incidents.selectors import incidents_for, sees_unit
from incidents.services.duplicates import suggest_duplicates
from incidents.services.intake import IntakeError, Report, report_incident
from incidents.services.photos import PhotoError, attach_photo, check_photo
from incidents.services.transitions import roles_of
from maps.assets import render_fragment
from maps.builders import Boundary, picker_map

REPORTERS = frozenset({GRID_MEMBER, GRID_CHIEF, DISTRICT_ADMIN})
# Sources a person reports from on this form (imports come through the import command).
FORM_SOURCES = [choice for choice in Source.choices if choice[0] != Source.IMPORT]
# Micro-grids drawn on the picker map when the user's scope has at most this many.
MAX_MICROGRIDS_ON_MAP = 100
SIMPLIFY_DEGREES = 0.00001  # about 1 m: enough for a picking map, much lighter
DEFAULT_CENTRE = (104.07, 30.66)  # used when the user has no unit with a boundary


def may_report(user) -> bool:
    return bool(roles_of(user) & REPORTERS)


def category_choices() -> list:
    """Active categories grouped by 大类: [("01 公用设施", [(code, label), …]), …]."""
    categories = Category.objects.active().order_by("family", "major", "minor")
    groups = []
    for (family, major, major_name), members in groupby(
        categories, key=lambda c: (c.family, c.major, c.major_name)
    ):
        letter = "C" if family == "component" else "E"
        groups.append(
            (f"{letter}{major} {major_name}", [(c.code, f"{c.code} {c.name}") for c in members])
        )
    return [("", "—"), *groups]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


class ReportForm(forms.Form):
    lon = forms.FloatField(label=gettext_lazy("longitude"), min_value=-180, max_value=180)
    lat = forms.FloatField(label=gettext_lazy("latitude"), min_value=-90, max_value=90)
    crs = forms.ChoiceField(
        label=gettext_lazy("coordinate system"), choices=InputCRS.choices, initial="wgs84"
    )
    category = forms.ChoiceField(label=gettext_lazy("category"))
    description = forms.CharField(
        label=gettext_lazy("description"),
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    urgent = forms.BooleanField(label=gettext_lazy("urgent"), required=False)
    source = forms.ChoiceField(label=gettext_lazy("source"), choices=FORM_SOURCES)
    reporter_name = forms.CharField(label=gettext_lazy("reporter"), max_length=50, required=False)
    reporter_phone = forms.RegexField(
        label=gettext_lazy("reporter phone"),
        regex=r"^[0-9+\- ]{3,20}$",
        max_length=20,
        required=False,
        error_messages={"invalid": gettext_lazy("digits, spaces, + and - only")},
    )
    photos = MultipleFileField(label=gettext_lazy("photos"), required=False)
    not_duplicate = forms.BooleanField(
        label=gettext_lazy("this is not a duplicate of the incidents listed"), required=False
    )
    outside_units = forms.BooleanField(
        label=gettext_lazy("report it although it lies outside my units"), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = category_choices()

    def clean_category(self) -> Category:
        code = self.cleaned_data["category"]
        category = Category.objects.active_by_code(code)
        if category is None:
            raise forms.ValidationError(_("unknown category %(code)r") % {"code": code})
        return category

    def clean_photos(self):
        photos = self.cleaned_data.get("photos") or []
        for photo in photos:
            try:
                check_photo(photo)
            except PhotoError as exc:
                raise forms.ValidationError(str(exc)) from None
        return photos

    def wgs84(self) -> tuple[float, float]:
        """The cleaned point converted to WGS84 (lon, lat)."""
        data = self.cleaned_data
        lon, lat = crs_tools.to_wgs84(data["lon"], data["lat"], data["crs"])
        return float(lon), float(lat)


def _scope_boundaries(user) -> list[Boundary]:
    """The user's units (current boundaries, simplified), and their micro-grids if few."""
    current = BoundaryVersion.objects.current().select_related("unit")
    versions = list(current.filter(unit__in=scope_roots(user)))
    microgrids = in_scope(
        Unit.objects.filter(kind=UnitKind.MICROGRID, retired_on__isnull=True), user
    ).exclude(pk__in=[v.unit_id for v in versions])
    if microgrids.count() <= MAX_MICROGRIDS_ON_MAP:
        versions += list(current.filter(unit__in=microgrids))
    boundaries = []
    for version in versions:
        role = "microgrid" if version.unit.kind == UnitKind.MICROGRID else "scope"
        geom = version.geom.simplify(SIMPLIFY_DEGREES, preserve_topology=True)
        boundaries.append(Boundary(version.unit.code, version.name, json.loads(geom.geojson), role))
    return boundaries


def _page(request, form: ReportForm, suggestions=(), status: int = 200, outside: str = ""):
    point = form.wgs84() if form.is_bound and form.is_valid() else None
    boundaries = _scope_boundaries(request.user)
    fmap = picker_map(
        boundaries,
        point=point,
        center=None if boundaries else DEFAULT_CENTRE,
    )
    context = {
        "form": form,
        "map": render_fragment(fmap),
        "suggestions": suggestions,
        "duplicates_url": reverse("api-incident-duplicates"),
        "outside": outside,
    }
    return render(request, "incidents/report.html", context, status=status)


def _outside_units(user, lon: float, lat: float, day) -> str:
    """ "" when the user would see an incident at this point; else why not, to confirm (the
    incident would go to another unit, or to none, and out of the reporter's lists)."""
    deepest = geotag_point(lon, lat, day).deepest
    if sees_unit(user, deepest):
        return ""
    if deepest is None:
        return _(
            "This point lies outside every unit: the incident would go to the district "
            "administrators and you would not see it in your lists."
        )
    unit = Unit.objects.get(pk=deepest)
    return _(
        "This point lies in %(unit)s (%(code)s), outside your units: the incident would go "
        "there and you would not see it in your lists."
    ) % {"unit": unit.name, "code": unit.code}


def _intake_field(message: str) -> str | None:
    for name in ("lon", "lat", "crs", "source", "category"):
        if message.startswith(name):
            return name
    return None


@login_required
def incident_report(request):
    if not may_report(request.user):
        raise PermissionDenied(_("only grid members, grid chiefs and district administrators"))
    if request.method != "POST":
        return _page(request, ReportForm())
    form = ReportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    lon, lat = form.wgs84()
    now = timezone.now()
    if not data["outside_units"]:
        outside = _outside_units(request.user, lon, lat, timezone.localdate(now))
        if outside:
            return _page(request, form, status=400, outside=outside)
    suggestions = suggest_duplicates(
        lon=lon, lat=lat, category=data["category"], reported_at=now, user=request.user
    )
    if suggestions and not data["not_duplicate"]:
        return _page(request, form, suggestions)
    report = Report(
        lon=data["lon"],
        lat=data["lat"],
        crs=data["crs"],
        category=data["category"],
        source=data["source"],
        description=data["description"],
        reporter_name=data["reporter_name"],
        reporter_phone=data["reporter_phone"],
        urgent=data["urgent"],
        reported_at=now,
    )
    try:
        with transaction.atomic():
            incident = report_incident(report, user=request.user)
            for photo in data["photos"]:
                attach_photo(incident, photo, request.user)
    except (IntakeError, PhotoError) as exc:
        form.add_error(
            "photos" if isinstance(exc, PhotoError) else _intake_field(str(exc)), str(exc)
        )
        return _page(request, form, status=400)
    messages.success(request, _("incident #%(id)s was reported") % {"id": incident.pk})
    if not incidents_for(request.user).filter(pk=incident.pk).exists():
        messages.info(request, _("it lies outside your units, so it is not shown to you"))
        return redirect("incident-report")
    return redirect("incident-detail", pk=incident.pk)
