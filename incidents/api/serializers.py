"""Serializers of the incident API: GeoJSON features out, plain JSON bodies in."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from gis import crs as crs_tools
from incidents.models import (
    MAX_DESCRIPTION,
    MAX_MEDIA_URL,
    Category,
    Incident,
    Source,
    TimelineEntry,
)
from incidents.workflow import transitions_from


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = [
            "code",
            "family",
            "major",
            "major_name",
            "minor",
            "name",
            "responsible_unit_type",
            "deadline_unit",
            "deadline_normal",
            "deadline_urgent",
            "police_relevant",
            "duplicate_radius_m",
        ]


class CategoryRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    major = serializers.CharField()
    major_name = serializers.CharField()
    police_relevant = serializers.BooleanField()


class UnitRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class UnitsSerializer(serializers.Serializer):
    """The incident's units from the street down (null where it has none)."""

    street = UnitRefSerializer(allow_null=True)
    community = UnitRefSerializer(allow_null=True)
    grid = UnitRefSerializer(allow_null=True)
    microgrid = UnitRefSerializer(allow_null=True, source="unit")


class ActionSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    needs_note = serializers.BooleanField()


class TimelineEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = TimelineEntry
        fields = ["at", "actor", "action", "from_state", "to_state", "note", "photo", "data"]


class IncidentSerializer(GeoFeatureModelSerializer):
    """An incident as a GeoJSON Feature (RFC 7946: WGS 84, lon/lat order).

    The reporter's phone is always masked here.
    """

    category = CategoryRefSerializer(read_only=True)
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    overdue = serializers.SerializerMethodField()
    overdue_3x = serializers.SerializerMethodField()
    units = UnitsSerializer(source="*", read_only=True)
    reporter_phone = serializers.CharField(source="masked_phone", read_only=True)

    class Meta:
        model = Incident
        geo_field = "location"
        fields = [
            "id",
            "category",
            "state",
            "state_label",
            "source",
            "urgent",
            "reported_at",
            "deadline",
            "overdue",
            "overdue_3x",
            "units",
            "unassigned",
            "near_boundary",
            "description",
            "reporter_name",
            "reporter_phone",
            "lock_version",
        ]
        read_only_fields = fields

    def get_overdue(self, incident) -> bool:
        return incident.is_overdue

    def get_overdue_3x(self, incident) -> bool:
        return incident.is_3x_overdue


class IncidentDetailSerializer(IncidentSerializer):
    """One incident with its timeline and the actions the requesting user may make now."""

    timeline = TimelineEntrySerializer(many=True, read_only=True)
    actions = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [
            *IncidentSerializer.Meta.fields,
            "input_crs",
            "input_lon",
            "input_lat",
            "external_id",
            "media_url",
            "deadline_note",
            "closed_at",
            "boundary_candidates",
            "timeline",
            "actions",
        ]
        read_only_fields = fields

    @extend_schema_field(ActionSerializer(many=True))
    def get_actions(self, incident):
        roles = self.context.get("roles", set())
        return [
            {"name": t.name, "label": str(t.label), "needs_note": t.needs_note}
            for t in transitions_from(incident.state, roles)
        ]


class ZoneKeepingDateTimeField(serializers.DateTimeField):
    """Leaves a time without a zone naive, so that intake refuses it instead of guessing."""

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            return value
        return super().enforce_timezone(value)


class IncidentCreateSerializer(serializers.Serializer):
    """The body of POST /api/incidents; intake checks ranges, the category's state, …"""

    lon = serializers.FloatField(help_text=_("longitude in the coordinate system `crs`"))
    lat = serializers.FloatField(help_text=_("latitude in the coordinate system `crs`"))
    crs = serializers.ChoiceField(choices=list(crs_tools.SUPPORTED), default="wgs84")
    category = serializers.CharField(help_text=_("category code, e.g. C0101"))
    source = serializers.ChoiceField(choices=Source.choices)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_DESCRIPTION
    )
    urgent = serializers.BooleanField(required=False, default=False)
    reporter_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=50
    )
    reporter_phone = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=20
    )
    reported_at = ZoneKeepingDateTimeField(
        required=False, allow_null=True, default=None, help_text=_("ISO 8601 with a time zone")
    )
    external_id = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default=None, max_length=64
    )
    media_url = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_MEDIA_URL,
        help_text=_("a picture published elsewhere (http or https)"),
    )


class TransitionSerializer(serializers.Serializer):
    """The body of POST /api/incidents/<id>/transition."""

    action = serializers.CharField()
    note = serializers.CharField(required=False, allow_blank=True, default="")
    lock_version = serializers.IntegerField(
        min_value=0, help_text=_("the lock_version of the incident as the user saw it")
    )
    amount = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        required=False,
        allow_null=True,
        default=None,
        help_text=_("request_extension / approve_extension: extra working time"),
    )
    unit = serializers.ChoiceField(
        choices=["hours", "days"],
        required=False,
        allow_null=True,
        default=None,
        help_text=_("the unit of amount"),
    )
    original = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text=_("mark_duplicate: the number of the original incident"),
    )
