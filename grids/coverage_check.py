"""Coverage check of the units in the database (the work behind `manage.py check_coverage`)."""

import datetime

from django.conf import settings
from django.utils.translation import gettext as _

from gis.coverage import CoverageReport, check_coverage
from grids.geometry import to_shapely
from grids.kinds import UnitKind
from grids.models import BoundaryVersion, Unit
from grids.services.boundaries import TerritoryError


def check_unit_coverage(
    kind: str, parent_code: str | None = None, at: datetime.date | None = None
) -> CoverageReport:
    """Check that the units of `kind` (under `parent_code`, if given) valid at `at` cover
    their parents without gaps, overlaps, slivers or parts outside the parent."""
    at = at or datetime.date.today()
    versions = BoundaryVersion.objects.valid_at(at).filter(unit__kind=kind)
    if parent_code:
        parent = Unit.objects.filter(code=parent_code).first()
        if parent is None:
            raise TerritoryError(_("no unit with code %(code)s") % {"code": parent_code})
        versions = versions.filter(unit__path__startswith=parent.path)
    rows = list(versions.values_list("unit__code", "geom", "parent__code"))
    features = [(code, to_shapely(geom), parent) for code, geom, parent in rows]
    parents = {}
    if kind != UnitKind.COURTYARD:  # courtyards do not partition their community
        parent_codes = {parent for _code, _geom, parent in rows if parent}
        parent_rows = (
            BoundaryVersion.objects.valid_at(at)
            .filter(unit__code__in=parent_codes)
            .values_list("unit__code", "geom")
        )
        parents = {code: to_shapely(geom) for code, geom in parent_rows}
    return check_coverage(
        features,
        parents,
        min_area_m2=settings.WEIGE_COVERAGE_MIN_AREA_M2,
        sliver_width_m=settings.WEIGE_SLIVER_WIDTH_M,
    )
