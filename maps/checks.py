"""System checks of the map settings (run by `manage.py check`, migrate, runserver)."""

from django.core import checks

from maps import basemaps


def check_basemap(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """maps.E001: WEIGE_BASEMAP is not a known basemap; maps.E002: a Tianditu basemap
    without WEIGE_TIANDITU_KEY."""
    try:
        basemaps.current()
    except basemaps.BasemapError as exc:
        return [checks.Error(exc.message, hint=exc.hint, id=exc.check_id)]
    return []
