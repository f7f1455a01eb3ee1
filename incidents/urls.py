"""Incident pages. The API is in incidents.api.urls, Open311 in incidents.open311.urls."""

from django.urls import path  # noqa: F401 (pages register below)

from incidents.views import detail, kpi, lists, photos, police, report, supervision

urlpatterns: list = [
    # list and supervision pages
    path("incidents/", lists.incident_list, name="incident-list"),
    path("incidents/export.csv", lists.incident_export, name="incident-export"),
    path("incidents/supervision", supervision.supervision, name="supervision"),
    path("incidents/supervision.csv", supervision.supervision_export, name="supervision-export"),
    # detail and report pages
    path("incidents/new", report.incident_report, name="incident-report"),
    path("incidents/<int:pk>/", detail.incident_detail, name="incident-detail"),
    path("incidents/<int:pk>/unit", detail.incident_unit, name="incident-unit"),
    path("incidents/<int:pk>/photos/<int:photo_id>", photos.incident_photo, name="incident-photo"),
    path(
        "incidents/<int:pk>/timeline/<int:entry_id>/photo",
        photos.timeline_photo,
        name="timeline-photo",
    ),
    # police and KPI pages
    path("incidents/police", police.police, name="police"),
    path("incidents/kpis", kpi.kpis, name="kpis"),
    path("incidents/kpis.csv", kpi.kpi_export, name="kpi-export"),
]
