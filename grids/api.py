"""Territory API endpoints (thin: parsing and errors here, the work in grids.lookup)."""

import datetime
import math

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from gis import crs as crs_tools
from grids.lookup import locate


class BadRequest(ValueError):
    pass


def _float_param(params, name: str) -> float:
    raw = params.get(name)
    if raw in (None, ""):
        raise BadRequest(_("missing parameter %(name)s") % {"name": name})
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(
            _("parameter %(name)s=%(raw)r is not a number") % {"name": name, "raw": raw}
        ) from None
    if not math.isfinite(value):
        raise BadRequest(_("parameter %(name)s must be a finite number") % {"name": name})
    return value


def parse_locate_params(params) -> tuple[float, float, str, datetime.date]:
    lon = _float_param(params, "lon")
    lat = _float_param(params, "lat")
    if not -180 <= lon <= 180:
        raise BadRequest(_("lon=%(v)s is out of range -180..180") % {"v": lon})
    if not -90 <= lat <= 90:
        raise BadRequest(_("lat=%(v)s is out of range -90..90") % {"v": lat})
    crs_text = params.get("crs") or "wgs84"
    if crs_text.lower() not in ("wgs84", "cgcs2000", "gcj02", "bd09"):
        raise BadRequest(
            _("crs=%(crs)r is not supported: use wgs84, cgcs2000, gcj02 or bd09")
            % {"crs": crs_text}
        )
    at_text = params.get("at")
    if at_text:
        try:
            at = datetime.date.fromisoformat(at_text)
        except ValueError:
            raise BadRequest(
                _("at=%(v)r is not a date in the form YYYY-MM-DD") % {"v": at_text}
            ) from None
    else:
        at = datetime.date.today()
    return lon, lat, crs_text.lower(), at


class LocateView(APIView):
    """GET /api/locate?lon=..&lat=..[&crs=wgs84|cgcs2000|gcj02|bd09][&at=YYYY-MM-DD]"""

    @extend_schema(
        parameters=[
            OpenApiParameter("lon", OpenApiTypes.DOUBLE, required=True),
            OpenApiParameter("lat", OpenApiTypes.DOUBLE, required=True),
            OpenApiParameter("crs", OpenApiTypes.STR, enum=["wgs84", "cgcs2000", "gcj02", "bd09"]),
            OpenApiParameter("at", OpenApiTypes.DATE),
        ],
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
        description="The chain of units containing the point at a date (see grids.lookup).",
    )
    def get(self, request):
        try:
            lon, lat, crs_name, at = parse_locate_params(request.query_params)
        except BadRequest as exc:
            return Response({"error": str(exc)}, status=400)
        wlon, wlat = crs_tools.to_wgs84(lon, lat, crs_name)
        wlon, wlat = float(wlon), float(wlat)
        result = locate(wlon, wlat, at)
        return Response(
            {
                "query": {"lon": lon, "lat": lat, "crs": crs_name, "at": at.isoformat()},
                "wgs84": {"lon": round(wlon, 8), "lat": round(wlat, 8)},
                **result,
            }
        )
