"""Map pages and layer endpoints (maps.views)."""

from django.urls import path

from maps import views

urlpatterns = [
    path("maps/", views.landing, name="maps"),
    path("maps/coverage/", views.coverage, name="map-coverage"),
    path("maps/hazards/", views.hazards, name="map-hazards"),
    path("maps/workstations/", views.workstations, name="map-workstations"),
    path("maps/units/<str:code>/", views.unit, name="map-unit"),
    path("maps/layers/<str:name>.geojson", views.layer, name="map-layer"),
    path("maps/bundle.<str:kind>", views.bundle, name="map-bundle"),
]
