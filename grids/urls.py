from django.contrib.auth import views as auth_views
from django.urls import path

from grids import views

urlpatterns = [
    path("", views.home, name="home"),
    path("units/<str:code>/", views.unit_detail, name="unit-detail"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
