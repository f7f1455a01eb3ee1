"""Django admin for problem categories: edited here, never deleted (deactivated instead)."""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from incidents.categories import export_categories
from incidents.models import Category, DispatchRule


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "family",
        "major_name",
        "deadline_normal",
        "deadline_urgent",
        "deadline_unit",
        "police_relevant",
        "active",
    )
    list_filter = ("family", "active", "police_relevant", "deadline_unit", "major_name")
    search_fields = ("code", "name", "major_name", "responsible_unit_type")
    list_per_page = 200
    actions = ["export_csv", "deactivate", "activate"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "code",
                    ("family", "major", "minor"),
                    "major_name",
                    "name",
                    "responsible_unit_type",
                    "active",
                )
            },
        ),
        (
            _("deadlines"),
            {
                "fields": (
                    "deadline_unit",
                    ("deadline_normal", "deadline_urgent"),
                    "staged_deadlines",
                )
            },
        ),
        (_("handling"), {"fields": ("police_relevant", "duplicate_radius_m")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # The code is the category's identity in CSV files and APIs: to renumber, add a new
        # category and deactivate the old one.
        if obj is None:
            return ()
        return ("code", "family", "major", "minor")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Export selected categories as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="categories.csv"'
        response.write("\ufeff")  # so that Excel reads it as UTF-8
        export_categories(response, queryset)
        return response

    @admin.action(description=_("Deactivate selected categories"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = queryset.filter(active=True).update(active=False)
        self.message_user(
            request,
            ngettext("%(count)d category deactivated", "%(count)d categories deactivated", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Activate selected categories"), permissions=["change"])
    def activate(self, request, queryset):
        count = queryset.filter(active=False).update(active=True)
        self.message_user(
            request,
            ngettext("%(count)d category activated", "%(count)d categories activated", count)
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(DispatchRule)
class DispatchRuleAdmin(admin.ModelAdmin):
    """Ordered dispatch rules: the first active rule whose conditions all match wins."""

    list_display = (
        "order",
        "name",
        "category",
        "major",
        "unit",
        "police_relevant",
        "target",
        "department",
        "active",
    )
    list_display_links = ("name",)
    list_editable = ("order", "active")
    list_filter = ("active", "target", "police_relevant")
    search_fields = ("name", "department", "category__code", "category__name", "unit__code")
    ordering = ("order", "id")
    raw_id_fields = ("unit",)
    list_select_related = ("category", "unit")
    fields = (
        ("order", "active"),
        "name",
        ("category", "major", "police_relevant"),
        "unit",
        ("target", "department"),
    )
