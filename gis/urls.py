from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

# Uploaded files (incident photos) are not served from MEDIA_URL: incidents.views.photos
# serves each photo to the users who may see its incident.
urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("grids.api_urls")),
    path("api/", include("incidents.api.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("open311/v2/", include("incidents.open311.urls")),
    path("", include("incidents.urls")),
    path("", include("maps.urls")),
    path("", include("grids.urls")),
]
