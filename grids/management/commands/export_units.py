import datetime

import geopandas as gpd
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from gis.crs import CRSError, parse_crs
from gis.spatial_io import SpatialFileError, write_features
from grids.geometry import to_shapely
from grids.kinds import parse_kind
from grids.models import BoundaryVersion


class Command(BaseCommand):
    help = _("Export the units of a kind, as they were on a date, to a spatial file.")

    def add_arguments(self, parser):
        parser.add_argument("out")
        parser.add_argument("--kind", required=True)
        parser.add_argument("--format", required=True, choices=["geojson", "gpkg", "shp", "csv"])
        parser.add_argument("--crs", default="wgs84")
        parser.add_argument("--at", help="date (YYYY-MM-DD; default today)")

    def handle(self, *args, **opts):
        try:
            kind = parse_kind(opts["kind"])
            crs = parse_crs(opts["crs"])
            at = datetime.date.fromisoformat(opts["at"]) if opts["at"] else datetime.date.today()
        except (ValueError, CRSError) as exc:
            raise CommandError(str(exc)) from None
        frame = units_frame(kind, at)
        try:
            write_features(frame, opts["out"], fmt=opts["format"], crs=crs)
        except SpatialFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _("%(n)d %(kind)s unit(s) as of %(at)s written to %(out)s (%(crs)s)")
            % {"n": len(frame), "kind": kind, "at": at, "out": opts["out"], "crs": crs}
        )


def units_frame(kind: str, at: datetime.date) -> gpd.GeoDataFrame:
    """The units of `kind` valid at `at` with code, name, parent code, counts and dates."""
    rows = BoundaryVersion.objects.valid_at(at).filter(unit__kind=kind).order_by("unit__code")
    records = [
        {
            "code": v.unit.code,
            "name": v.name,
            "parent": v.parent.code if v.parent else None,
            "kind": kind,
            "households": v.households,
            "population": v.population,
            "valid_from": v.valid_from.isoformat(),
            "valid_to": v.valid_to.isoformat() if v.valid_to else None,
            "geometry": to_shapely(v.geom),
        }
        for v in rows.select_related("unit", "parent")
    ]
    columns = [
        "code",
        "name",
        "parent",
        "kind",
        "households",
        "population",
        "valid_from",
        "valid_to",
        "geometry",
    ]
    return gpd.GeoDataFrame(records, columns=columns, geometry="geometry", crs="EPSG:4326")
