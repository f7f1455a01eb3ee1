"""Incident API views (thin: parsing and HTTP errors here; the work in incidents.services).

Every incident is looked up through incidents.selectors.incidents_for, so an incident
outside the user's scope is simply not found (404).
"""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework_gis.pagination import GeoJsonPagination

from incidents.api.serializers import (
    CategorySerializer,
    ErrorSerializer,
    IncidentCreateSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    TransitionSerializer,
)
from incidents.models import Category, Incident, Source
from incidents.selectors import SORTS, filter_incidents, incidents_for
from incidents.services.actions import perform
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
    OpenApiParameter("major", str, description="two-digit major class, e.g. 01"),
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
    OpenApiParameter("q", str, description="text in the description or the reporter's name"),
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
