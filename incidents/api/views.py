"""Incident API views (thin: parsing and HTTP errors here; the work in incidents.services).

Every incident is looked up through incidents.selectors.incidents_for, so an incident
outside the user's scope is simply not found (404).
"""

import math

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework_gis.pagination import GeoJsonPagination

from gis import crs as crs_tools
from incidents.api.serializers import (
    CategorySerializer,
    ErrorSerializer,
    IncidentCreateSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    TransitionSerializer,
    ZoneKeepingDateTimeField,
)
from incidents.models import Category, Incident, Source
from incidents.selectors import (
    FIRST_DAY,
    FLAGS,
    LAST_DAY,
    SORTS,
    filter_incidents,
    incidents_for,
)
from incidents.services.actions import perform
from incidents.services.duplicates import suggest_duplicates
from incidents.services.intake import IntakeError, Report, report_incident
from incidents.services.transitions import roles_of
from incidents.workflow import State, TransitionRefused


class IncidentPagination(GeoJsonPagination):
    page_size = 50
    max_page_size = 500


def error(message, code=status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": str(message)}, status=code)


def first_error(errors) -> str:
    """Serializer errors as one message naming the field: "lon: A valid number is required."."""
    for field, messages in errors.items():
        message = messages[0] if isinstance(messages, list) else messages
        if isinstance(message, dict):
            return first_error(message)
        return f"{field}: {message}"
    return _("invalid request")


def detail_response(view, incident: Incident, code=status.HTTP_200_OK) -> Response:
    incident = get_object_or_404(
        incidents_for(view.request.user).prefetch_related("timeline__actor"), pk=incident.pk
    )
    context = {**view.get_serializer_context(), "roles": roles_of(view.request.user)}
    return Response(IncidentDetailSerializer(incident, context=context).data, status=code)


ERROR_400 = OpenApiResponse(ErrorSerializer, description="bad parameter or body")
FILTER_PARAMETERS = [
    OpenApiParameter("unit", str, description="unit code: that unit and everything below it"),
    OpenApiParameter("category", str, description="category code, e.g. C0101"),
    OpenApiParameter(
        "major",
        str,
        description="major class (大类): C01 / E01 for one family, or 01 for both",
    ),
    OpenApiParameter("state", str, many=True, enum=State.values, description="repeatable"),
    OpenApiParameter(
        "overdue",
        str,
        enum=["1", "0", "3x"],
        description="1: open and past the deadline; 0: not; 3x: three times overdue",
    ),
    OpenApiParameter("from", OpenApiTypes.DATE, description="reported on or after (local date)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="reported on or before (local date)"),
    OpenApiParameter("police_relevant", bool),
    OpenApiParameter("source", str, enum=Source.values),
    OpenApiParameter(
        "flag",
        str,
        enum=list(FLAGS),
        description="unassigned: outside every unit; near_boundary: awaiting a unit decision",
    ),
    OpenApiParameter(
        "q",
        str,
        description="incident number (123 or #123), or text in the description or "
        "the reporter's name",
    ),
    OpenApiParameter("sort", str, enum=list(SORTS)),
]


class IncidentListView(generics.GenericAPIView):
    """GET: the incidents in the user's scope (GeoJSON); POST: report a new incident."""

    serializer_class = IncidentSerializer
    pagination_class = IncidentPagination

    def get_queryset(self):
        return incidents_for(self.request.user)

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={200: IncidentSerializer(many=True), 400: ERROR_400},
    )
    def get(self, request):
        try:
            incidents = filter_incidents(self.get_queryset(), request.query_params)
        except ValueError as exc:
            return error(exc)
        page = self.paginate_queryset(incidents)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request=IncidentCreateSerializer,
        responses={201: IncidentDetailSerializer, 400: ERROR_400},
    )
    def post(self, request):
        body = IncidentCreateSerializer(data=request.data)
        if not body.is_valid():
            return error(first_error(body.errors))
        data = body.validated_data
        category = Category.objects.filter(code=data["category"]).first()
        if category is None:
            return error(_("unknown category %(code)r") % {"code": data["category"]})
        report = Report(
            lon=data["lon"],
            lat=data["lat"],
            crs=data["crs"],
            category=category,
            source=data["source"],
            description=data["description"],
            reporter_name=data["reporter_name"],
            reporter_phone=data["reporter_phone"],
            urgent=data["urgent"],
            reported_at=data["reported_at"],
            external_id=data["external_id"] or None,
            media_url=data["media_url"],
        )
        try:
            incident = report_incident(report, user=request.user)
        except IntakeError as exc:
            return error(exc)
        if not incidents_for(request.user).filter(pk=incident.pk).exists():
            # Taken in, but outside what this user may see: say so without showing it.
            return Response({"id": incident.pk, "visible": False}, status=status.HTTP_201_CREATED)
        return detail_response(self, incident, status.HTTP_201_CREATED)


class IncidentDetailView(generics.GenericAPIView):
    """One incident with its timeline and the actions the user may make now."""

    serializer_class = IncidentDetailSerializer

    def get_queryset(self):
        return incidents_for(self.request.user)

    @extend_schema(responses={200: IncidentDetailSerializer, 404: ErrorSerializer})
    def get(self, request, pk: int):
        return detail_response(self, get_object_or_404(self.get_queryset(), pk=pk))


class IncidentTransitionView(generics.GenericAPIView):
    """Move an incident through the closed loop; refused transitions answer 409."""

    serializer_class = TransitionSerializer

    def get_queryset(self):
        return incidents_for(self.request.user)

    @extend_schema(
        request=TransitionSerializer,
        responses={
            200: IncidentDetailSerializer,
            400: ERROR_400,
            404: ErrorSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="wrong state or role, or changed by someone else"
            ),
        },
    )
    def post(self, request, pk: int):
        incident = get_object_or_404(self.get_queryset(), pk=pk)
        body = TransitionSerializer(data=request.data)
        if not body.is_valid():
            return error(first_error(body.errors))
        data = body.validated_data
        incident.lock_version = data["lock_version"]
        try:
            incident = perform(
                incident,
                data["action"],
                request.user,
                note=data["note"],
                amount=data["amount"],
                unit=data["unit"],
                original=data["original"],
            )
        except TransitionRefused as exc:
            return error(exc, status.HTTP_409_CONFLICT)
        return detail_response(self, incident)


class CategoryListView(generics.ListAPIView):
    """The categories in use (not paginated)."""

    serializer_class = CategorySerializer
    pagination_class = None
    queryset = Category.objects.active()


class DuplicateQuerySerializer(serializers.Serializer):
    """The query of GET /api/incidents/duplicates."""

    lon = serializers.FloatField(min_value=-180, max_value=180)
    lat = serializers.FloatField(min_value=-90, max_value=90)
    crs = serializers.ChoiceField(choices=list(crs_tools.SUPPORTED), default="wgs84")
    category = serializers.CharField(help_text="category code, e.g. C0101")
    reported_at = ZoneKeepingDateTimeField(
        required=False, allow_null=True, default=None, help_text="ISO 8601 with a time zone"
    )

    def _finite(self, value: float) -> float:
        if not math.isfinite(value):
            raise serializers.ValidationError(_("must be a finite number"))
        return value

    validate_lon = _finite
    validate_lat = _finite


class DuplicateSuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="incident.pk")
    url = serializers.SerializerMethodField()
    category = serializers.CharField(source="incident.category.code")
    state = serializers.CharField(source="incident.state")
    state_label = serializers.CharField(source="incident.get_state_display")
    reported_at = serializers.DateTimeField(source="incident.reported_at")
    description = serializers.CharField(source="incident.description")
    distance_m = serializers.FloatField(help_text="geodesic distance from the queried point")

    def get_url(self, suggestion) -> str:
        return reverse("incident-detail", args=[suggestion.incident.pk])


class DuplicateSuggestionsView(generics.GenericAPIView):
    """Open incidents of the same category near a point (possible duplicates of a new
    report), nearest first, limited to the user's scope; the report form calls this."""

    serializer_class = DuplicateSuggestionSerializer
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("lon", float, required=True, description="longitude in `crs`"),
            OpenApiParameter("lat", float, required=True, description="latitude in `crs`"),
            OpenApiParameter("crs", str, enum=list(crs_tools.SUPPORTED), default="wgs84"),
            OpenApiParameter("category", str, required=True, description="category code"),
            OpenApiParameter(
                "reported_at",
                OpenApiTypes.DATETIME,
                description="when the new incident happened (default: now)",
            ),
        ],
        responses={200: DuplicateSuggestionSerializer(many=True), 400: ERROR_400},
    )
    def get(self, request):
        query = DuplicateQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return error(first_error(query.errors))
        data = query.validated_data
        category = Category.objects.filter(code=data["category"]).first()
        if category is None:
            return error(_("category: unknown category %(code)r") % {"code": data["category"]})
        reported_at = data["reported_at"] or timezone.now()
        if timezone.is_naive(reported_at):
            return error(_("reported_at: must carry a time zone"))
        if not FIRST_DAY <= reported_at.date() <= LAST_DAY:
            return error(
                _("reported_at: outside %(first)s … %(last)s")
                % {"first": FIRST_DAY, "last": LAST_DAY}
            )
        lon, lat = crs_tools.to_wgs84(data["lon"], data["lat"], data["crs"])
        suggestions = suggest_duplicates(
            lon=float(lon),
            lat=float(lat),
            category=category,
            reported_at=reported_at,
            user=request.user,
        )
        return Response(self.get_serializer(suggestions, many=True).data)
