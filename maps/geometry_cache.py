"""Unit outlines prepared for maps: simplified per zoom band, cached per boundary state.

A district has ~10⁴ micro-grids; their full outlines are megabytes and take a browser
seconds to draw. `outlines(kind, crs)` loads the current boundary versions of one unit kind
once, simplifies them *as a coverage* (shapely.coverage_simplify: an edge shared by two
units is simplified once, so neighbours still share it and no gap or overlap appears on
screen) for each zoom band, rounds the coordinates to what the band can show, and keeps every
outline as a ready GeoJSON geometry string. Layer endpoints then only pick the outlines in
the requested box and scope.

The cache key is the boundary state of the kind (`boundary_state`: how many current
versions, the newest version id and creation time): a new, adjusted, split, merged or closed
version changes it, so an edit is never shown with stale outlines. Entries live in this
process (the latest per kind and coordinate system) and in the Django cache "maps" (shared by
the server's workers). Scope is not part of this cache: the outlines of a unit are the same
for everyone, and every endpoint filters them through grids.scoping.in_scope per request.
"""

import math
import threading
from dataclasses import dataclass

import numpy as np
import shapely
from django.contrib.gis.db.models.functions import AsWKB
from django.core.cache import caches
from django.db.models import Count, Max
from django.utils import timezone

from gis.crs import transform_geometries
from grids.models import BoundaryVersion

# Zoom bands: outlines for zoom z use the first band >= z; beyond the last band the outlines
# are shown as stored (rounded to 1e-7°, about 1 cm).
ZOOM_BANDS = (10, 12, 14, 16)
FULL_DETAIL = 99
CACHE_ALIAS = "maps"
CACHE_SECONDS = 7 * 24 * 3600
# Part of the shared cache's keys: raised when what _prepare makes changes (simplification,
# rounding), so that a new release does not serve outlines an older one prepared.
OUTLINES_FORMAT = 2


def tolerance(zoom: int) -> float:
    """Simplification tolerance in degrees at `zoom`: one screen pixel at the equator."""
    return 360.0 / (256 * 2**zoom)


def band_for(zoom: int) -> int:
    for band in ZOOM_BANDS:
        if zoom <= band:
            return band
    return FULL_DETAIL


def decimals_for(band: int) -> int:
    """The fewest coordinate decimals (at least 4) whose rounding moves a point by at most a
    third of the band's simplification tolerance (one screen pixel at the band's zoom):
    Leaflet draws every vertex at a whole pixel anyway (latLngToLayerPoint rounds), and the
    outlines already differ from the stored ones by up to the tolerance."""
    if band == FULL_DETAIL:
        return 7
    return min(7, max(4, math.ceil(-math.log10(2 * tolerance(band) / 3))))


@dataclass
class Outlines:
    """The current outlines of one unit kind: parallel arrays plus GeoJSON per band."""

    state: str
    unit_ids: np.ndarray  # int64
    version_ids: np.ndarray  # int64
    bounds: np.ndarray  # (n, 4) xmin, ymin, xmax, ymax in the display CRS
    geojson: dict[int, list[str]]  # band -> GeoJSON geometry text per unit

    def in_box(self, box: tuple[float, float, float, float] | None) -> np.ndarray:
        """Indexes of the outlines whose bounding box meets `box` (all when None)."""
        if box is None or len(self.unit_ids) == 0:
            return np.arange(len(self.unit_ids))
        x0, y0, x1, y1 = box
        b = self.bounds
        hit = (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)
        return np.flatnonzero(hit)


def shown_versions():
    """The boundary versions the maps draw: those valid today (a version dated from tomorrow
    shows tomorrow, as in the coverage check)."""
    return BoundaryVersion.objects.valid_at(timezone.localdate())


def boundary_state(kind: str) -> str:
    """A key that changes whenever the outlines of `kind` shown today change: the day, the
    number of versions valid today, the newest one's id and creation time."""
    return boundary_states([kind])[kind]


def boundary_states(kinds) -> dict[str, str]:
    """boundary_state of each of `kinds`, read in one query."""
    rows = (
        shown_versions()
        .filter(unit__kind__in=kinds)
        .values("unit__kind")
        .annotate(n=Count("id"), last=Max("id"), newest=Max("created_at"))
    )
    found = {row["unit__kind"]: row for row in rows}
    day = f"{timezone.localdate():%Y%m%d}"
    states = {}
    for kind in kinds:
        facts = found.get(kind, {})
        newest = facts["newest"].timestamp() if facts.get("newest") else 0
        states[kind] = f"{day}-{facts.get('n', 0)}-{facts.get('last') or 0}-{newest:.6f}"
    return states


_memory: dict[tuple[str, str], Outlines] = {}
_lock = threading.Lock()


def outlines(kind: str, crs: str = "wgs84") -> Outlines:
    """The prepared outlines of the current units of `kind` in `crs` ("wgs84" or "gcj02")."""
    state = boundary_state(kind)
    key = (kind, crs)
    found = _memory.get(key)
    if found is not None and found.state == state:
        return found
    cache_key = f"outlines:{OUTLINES_FORMAT}:{kind}:{crs}:{state}"
    found = caches[CACHE_ALIAS].get(cache_key)
    if found is None:
        found = _prepare(kind, crs, state)
        caches[CACHE_ALIAS].set(cache_key, found, CACHE_SECONDS)
    with _lock:
        _memory[key] = found
    return found


def forget() -> None:
    """Drop the outlines kept in this process (the shared cache keys on the state anyway)."""
    with _lock:
        _memory.clear()


def _load(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = list(
        shown_versions()
        .filter(unit__kind=kind)
        .order_by("unit_id")
        .annotate(wkb=AsWKB("geom"))
        .values_list("unit_id", "id", "wkb")
    )
    unit_ids = np.array([r[0] for r in rows], dtype=np.int64)
    version_ids = np.array([r[1] for r in rows], dtype=np.int64)
    geoms = shapely.from_wkb([bytes(r[2]) for r in rows]) if rows else np.array([], dtype=object)
    return unit_ids, version_ids, geoms


def simplify_coverage(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Simplify polygons that tile an area so shared edges stay shared.

    Falls back to simplifying each outline on its own (topology kept per outline) when the
    set is not a valid coverage for GEOS (e.g. overlapping imported boundaries).
    """
    if len(geoms) == 0:
        return geoms
    try:
        return shapely.coverage_simplify(geoms, tol, simplify_boundary=True)
    except shapely.errors.GEOSException:
        return shapely.simplify(geoms, tol, preserve_topology=True)


def _texts(geoms: np.ndarray, decimals: int) -> list[str]:
    rounded = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
    return list(shapely.to_geojson(rounded))  # compact, shortest round-trip numbers


def _prepare(kind: str, crs: str, state: str) -> Outlines:
    unit_ids, version_ids, geoms = _load(kind)
    if crs != "wgs84" and len(geoms):
        geoms = transform_geometries(geoms, "wgs84", crs)
    bounds = shapely.bounds(geoms) if len(geoms) else np.empty((0, 4))
    per_band = {}
    for band in (*ZOOM_BANDS, FULL_DETAIL):
        shown = geoms if band == FULL_DETAIL else simplify_coverage(geoms, tolerance(band))
        per_band[band] = _texts(shown, decimals_for(band))
    return Outlines(state, unit_ids, version_ids, np.asarray(bounds), per_band)
