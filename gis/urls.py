from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("grids.api_urls")),
    path("api/", include("incidents.api.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("open311/v2/", include("incidents.open311.urls")),
    path("", include("incidents.urls")),
    path("", include("grids.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
