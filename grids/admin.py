"""Django admin for the territory, with offline map widgets."""

from django import forms
from django.contrib import admin
from django.contrib.gis import admin as gis_admin
from django.contrib.gis.db import models as gis_models
from django.utils.translation import gettext_lazy as _

from grids.models import (
    BoundaryVersion,
    Lineage,
    PartyBranch,
    ServiceStation,
    StaffAssignment,
    StaffMember,
    Unit,
    Workstation,
)
from grids.scoping import in_scope
from grids.widgets import OfflineMapWidget


class ScopedAdminMixin:
    """Admin lists go through the same scoping function as every other list."""

    scope_field: str | None = "unit"
    scope_through_many = False  # the scope field crosses a many-to-many relation

    def get_queryset(self, request):
        queryset = in_scope(super().get_queryset(request), request.user, self.scope_field)
        return queryset.distinct() if self.scope_through_many else queryset


class OfflineMapAdmin(ScopedAdminMixin, gis_admin.GISModelAdmin):
    formfield_overrides = {
        gis_models.MultiPolygonField: {"widget": OfflineMapWidget},
        gis_models.PointField: {"widget": OfflineMapWidget},
    }
    gis_widget = OfflineMapWidget


class VersionInline(admin.TabularInline):
    model = BoundaryVersion
    fk_name = "unit"
    fields = ("valid_from", "valid_to", "change", "name", "households", "reason", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class AssignmentInline(admin.TabularInline):
    model = StaffAssignment
    fk_name = "unit"
    autocomplete_fields = ("member",)
    extra = 0


@admin.register(Unit)
class UnitAdmin(ScopedAdminMixin, admin.ModelAdmin):
    scope_field = None
    list_display = ("code", "name", "kind", "parent", "households", "population", "retired_on")
    list_filter = ("kind", "grid_type", "retired_on")
    search_fields = ("code", "name")
    autocomplete_fields = ("parent",)
    readonly_fields = ("path", "problems")
    inlines = [VersionInline, AssignmentInline]

    def has_delete_permission(self, request, obj=None):
        return False


class LineageInline(admin.TabularInline):
    model = Lineage
    fk_name = "to_version"
    fields = ("from_version", "how")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = _("came from")

    def has_add_permission(self, request, obj=None):
        return False


class BoundaryVersionForm(forms.ModelForm):
    """A saved version's outline is history: shown on the map, never redrawn in place."""

    class Meta:
        model = BoundaryVersion
        fields = ("geom", "reason")  # the admin adds the rest it shows

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and "geom" not in self.changed_data:
            # the map widget round-trips through web mercator: keep the stored outline exact
            cleaned["geom"] = BoundaryVersion.objects.get(pk=self.instance.pk).geom
        elif self.instance.pk:
            self.add_error(
                "geom",
                _(
                    "a boundary version's outline cannot be changed here; a new outline is "
                    "a new version (import_units or the redraw service)"
                ),
            )
        return cleaned


@admin.register(BoundaryVersion)
class BoundaryVersionAdmin(OfflineMapAdmin):
    form = BoundaryVersionForm
    list_display = ("unit", "name", "valid_from", "valid_to", "change", "created_by")
    list_filter = ("change", "unit__kind", "valid_to")
    search_fields = ("unit__code", "name")
    date_hierarchy = "valid_from"
    raw_id_fields = ("unit", "parent", "created_by")
    inlines = [LineageInline]

    def get_readonly_fields(self, request, obj=None):
        # History is kept as it was: only an open version's reason may be edited here;
        # boundary changes go through the import and redraw services.
        if obj is None:
            return ()
        return (
            "unit",
            "valid_from",
            "valid_to",
            "change",
            "created_by",
            "created_at",
            "source",
            "name",
            "parent",
            "households",
            "population",
        )

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StaffMember)
class StaffMemberAdmin(ScopedAdminMixin, admin.ModelAdmin):
    scope_field = "assignments__unit"
    scope_through_many = True
    list_display = ("name", "phone", "user")
    search_fields = ("name", "phone", "user__username")
    raw_id_fields = ("user",)


@admin.register(StaffAssignment)
class StaffAssignmentAdmin(ScopedAdminMixin, admin.ModelAdmin):
    list_display = ("member", "role", "unit", "start", "end")
    list_filter = ("role", "unit__kind")
    search_fields = ("member__name", "unit__code", "unit__name")
    autocomplete_fields = ("member", "unit")


@admin.register(PartyBranch)
class PartyBranchAdmin(ScopedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "kind", "unit", "secretary", "members")
    list_filter = ("kind",)
    search_fields = ("name", "unit__name")
    autocomplete_fields = ("unit", "secretary")


@admin.register(Workstation)
class WorkstationAdmin(OfflineMapAdmin):
    scope_field = "units"
    scope_through_many = True
    list_display = ("name", "pilot", "address", "opened_on")
    list_filter = ("pilot",)
    search_fields = ("name", "address")
    autocomplete_fields = ("units",)


@admin.register(ServiceStation)
class ServiceStationAdmin(OfflineMapAdmin):
    list_display = ("name", "unit", "opening_hours")
    search_fields = ("name",)
    autocomplete_fields = ("unit",)
