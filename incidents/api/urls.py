from django.urls import path

from incidents.api import views

urlpatterns = [
    path("incidents", views.IncidentListView.as_view(), name="api-incidents"),
    path(
        "incidents/duplicates",
        views.DuplicateSuggestionsView.as_view(),
        name="api-incident-duplicates",
    ),
    path("incidents/<int:pk>", views.IncidentDetailView.as_view(), name="api-incident"),
    path(
        "incidents/<int:pk>/transition",
        views.IncidentTransitionView.as_view(),
        name="api-incident-transition",
    ),
    path("categories", views.CategoryListView.as_view(), name="api-categories"),
]
