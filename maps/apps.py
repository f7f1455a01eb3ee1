from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MapsConfig(AppConfig):
    name = "maps"
    verbose_name = _("Maps")

    def ready(self):
        from django.core import checks

        from maps.checks import check_basemap

        checks.register(check_basemap)
