"""Incident pages. The API is in incidents.api.urls, Open311 in incidents.open311.urls."""

from django.urls import path  # noqa: F401 (pages register below)

urlpatterns: list = [
    # list and supervision pages
    # detail and report pages
    # police and KPI pages
]
