from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = _("Incidents")

    def ready(self):
        from grids.signals import boundaries_changed
        from incidents.services.reassignment import on_boundaries_changed

        boundaries_changed.connect(on_boundaries_changed, dispatch_uid="incidents-reassign")
