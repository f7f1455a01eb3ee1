from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("grids.api_urls")),
    path("", include("grids.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
