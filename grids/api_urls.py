from django.urls import path

from grids.api import LocateView

urlpatterns = [
    path("locate", LocateView.as_view(), name="api-locate"),
]
