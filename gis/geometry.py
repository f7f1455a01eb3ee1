"""Single-geometry hygiene for territory polygons (streets, communities, grids, micro-grids).

Framework-free: only numpy, shapely, pyproj and the standard library are used, so this module
can run inside import commands, management commands and tests without Django.

All input geometries are WGS84 longitude/latitude in degrees. Areas are square metres and
lengths metres, computed on the GRS80 ellipsoid (the ellipsoid of CGCS2000; it differs from
WGS84 by well under a millimetre at the scale of a grid).

Public API
----------
- :class:`Problem` - one finding (shared with :mod:`gis.coverage`), JSON-ready via ``to_dict``.
- :func:`normalize_polygonal` - check one geometry, return it as a 2D MultiPolygon plus problems.
- :func:`repair_polygonal` - make one geometry a valid 2D MultiPolygon, describing each change.
- :func:`parse_reason` - split a GEOS validity reason into text and (lon, lat) location.
- :func:`to_multipolygon` - keep only the polygonal parts of any geometry, as a MultiPolygon.
- :func:`geodesic_area_perimeter` - area (m²) and perimeter (m) of a lon/lat geometry.
- :func:`local_area_m2`, :func:`local_area_perimeter` - vectorised area (m²) and perimeter (m)
  in a local metric scale, consistent with the planar lon/lat topology (used for overlap, gap
  and sliver pieces).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = [
    "NormalizeResult",
    "Problem",
    "Severity",
    "format_location",
    "geodesic_area_perimeter",
    "local_area_m2",
    "local_area_perimeter",
    "normalize_polygonal",
    "parse_reason",
    "repair_polygonal",
    "to_multipolygon",
]

Severity = Literal["error", "warning"]

GEOD = Geod(ellps="GRS80")
_GRS80_A = 6378137.0
_GRS80_E2 = 0.00669438002290
_DEG = math.pi / 180.0

# Shapely geometry type ids.
_POINT, _LINESTRING, _LINEARRING, _POLYGON = 0, 1, 2, 3
_MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON, _COLLECTION = 4, 5, 6, 7
_MULTI_TYPES = (_MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON, _COLLECTION)

_REASON_LOCATION = re.compile(r"^(?P<text>.*?)\s*\[(?P<x>\S+)\s+(?P<y>\S+)(?:\s+\S+)?\]\s*$")


@dataclass
class Problem:
    """One finding about one or more territory units.

    ``codes`` are the unit codes involved (may be empty when the geometry is checked on its
    own; :mod:`gis.coverage` fills them). ``location`` is (lon, lat) in degrees, ``area_m2``
    square metres. ``fixed``/``change`` are set by the repair functions. ``detail`` refines the
    type (for ``sliver``: ``"overlap"`` or ``"gap"``).
    """

    type: str
    severity: Severity
    codes: list[str]
    message: str
    location: tuple[float, float] | None = None
    area_m2: float | None = None
    fixed: bool = False
    change: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (location as a [lon, lat] list or None)."""
        data = asdict(self)
        data["codes"] = [str(c) for c in self.codes]
        if self.location is not None:
            data["location"] = [float(self.location[0]), float(self.location[1])]
        if self.area_m2 is not None:
            data["area_m2"] = float(self.area_m2)
        return data


@dataclass
class NormalizeResult:
    """Outcome of :func:`normalize_polygonal`.

    ``geometry`` is a 2D MultiPolygon whenever the input had polygonal content (even if it is
    invalid: then an error problem says so), otherwise None.
    """

    geometry: MultiPolygon | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is a geometry and no error-severity problem."""
        return self.geometry is not None and not any(p.severity == "error" for p in self.problems)


def format_location(location: tuple[float, float] | None) -> str:
    """Format a (lon, lat) pair in degrees as ``"lon,lat"`` with 6 decimals (about 0.1 m)."""
    if location is None:
        return "unknown location"
    lon, lat = location
    return f"{lon:.6f},{lat:.6f}"


def _prefix(code: str | None) -> str:
    return f"{code}: " if code else ""


def _type_name(geom: BaseGeometry) -> str:
    return geom.geom_type


def parse_reason(reason: str) -> tuple[str, tuple[float, float] | None]:
    """Split a GEOS validity reason like ``"Self-intersection[116.61 40.03]"``.

    Returns the text and the (lon, lat) location it names (None if absent or not finite).
    """
    match = _REASON_LOCATION.match(reason.strip())
    if not match:
        return reason.strip(), None
    text = match.group("text")
    try:
        x, y = float(match.group("x")), float(match.group("y"))
    except ValueError:
        return text, None
    if not (math.isfinite(x) and math.isfinite(y)):
        return text, None
    return text, (x, y)


def _polygonal_parts(geom: BaseGeometry) -> tuple[list[Polygon], list[str]]:
    """Flatten ``geom`` into non-empty polygons; also return the type names of dropped parts."""
    polygons: list[Polygon] = []
    dropped: list[str] = []
    stack = [geom]
    while stack:
        g = stack.pop()
        type_id = shapely.get_type_id(g)
        if type_id == _POLYGON:
            if not g.is_empty:
                polygons.append(g)
        elif type_id in _MULTI_TYPES:
            stack.extend(reversed(list(shapely.get_parts(g))))
        elif not g.is_empty:
            dropped.append(_type_name(g))
    return polygons, dropped


def to_multipolygon(geom: BaseGeometry | None) -> MultiPolygon:
    """Return the polygonal parts of ``geom`` as a 2D MultiPolygon (empty if there are none)."""
    if geom is None or geom.is_empty:
        return MultiPolygon()
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)
    type_id = shapely.get_type_id(geom)
    if type_id == _MULTIPOLYGON:
        if any(part.is_empty for part in geom.geoms):
            return MultiPolygon([part for part in geom.geoms if not part.is_empty])
        return geom
    if type_id == _POLYGON:
        return MultiPolygon([geom])
    polygons, _ = _polygonal_parts(geom)
    return MultiPolygon(polygons)


def _bad_coordinates(geom: BaseGeometry) -> tuple[int, tuple[float, float] | None]:
    """Count coordinates that are not finite or outside lon -180..180 / lat -90..90."""
    coords = shapely.get_coordinates(geom)
    if coords.size == 0:
        return 0, None
    lon, lat = coords[:, 0], coords[:, 1]
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 180) | (np.abs(lat) > 90)
    count = int(bad.sum())
    if not count:
        return 0, None
    first = coords[np.argmax(bad)]
    return count, (float(first[0]), float(first[1]))


def geodesic_area_perimeter(geom: BaseGeometry) -> tuple[float, float]:
    """Area in m² and perimeter in m of a lon/lat (multi)polygon on the GRS80 ellipsoid.

    Orientation does not matter; holes are subtracted and their rings count in the perimeter.
    Non-polygonal parts contribute nothing.
    """
    if geom is None or geom.is_empty:
        return 0.0, 0.0
    area = 0.0
    perimeter = 0.0
    for poly in to_multipolygon(geom).geoms:
        for index, ring in enumerate((poly.exterior, *poly.interiors)):
            xy = shapely.get_coordinates(ring)
            a, p = GEOD.polygon_area_perimeter(xy[:, 0], xy[:, 1])
            area += abs(a) if index == 0 else -abs(a)
            perimeter += p
    return max(area, 0.0), perimeter


def _local_scale(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres per degree of lon and of lat at each geometry's mid-latitude (GRS80 radii)."""
    bounds = shapely.bounds(geoms)
    phi = np.radians((bounds[:, 1] + bounds[:, 3]) / 2.0)
    w = 1.0 - _GRS80_E2 * np.sin(phi) ** 2
    meridian = _GRS80_A * (1.0 - _GRS80_E2) / w**1.5
    normal = _GRS80_A / np.sqrt(w)
    return normal * np.cos(phi) * _DEG, meridian * _DEG


def local_area_m2(geoms: Any) -> np.ndarray:
    """Area in m² of each lon/lat geometry, in a local metric scale at its mid-latitude.

    The planar lon/lat area is scaled by the GRS80 metres-per-degree at the geometry's
    mid-latitude, so it agrees with GEOS' planar topology: a piece that is degenerate in lon/lat
    has zero area. (A geodesic area would give a long, planar-degenerate sliver a phantom area
    because geodesic edges bulge away from straight lon/lat edges.) Within 0.1% of the geodesic
    area for pieces up to a few km; within about 1% up to 50 km.
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    if arr.size == 0:
        return np.zeros(0)
    kx, ky = _local_scale(arr)
    return shapely.area(arr) * kx * ky


def local_area_perimeter(geoms: Any) -> tuple[np.ndarray, np.ndarray]:
    """Area (m²) and perimeter (m, all rings) of each lon/lat geometry in a local metric scale.

    Same scale as :func:`local_area_m2`; vectorised over an array of geometries.
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    if arr.size == 0:
        return np.zeros(0), np.zeros(0)
    kx, ky = _local_scale(arr)
    area = shapely.area(arr) * kx * ky
    rings, owner = shapely.get_rings(arr, return_index=True)
    perimeter = np.zeros(len(arr))
    if len(rings):
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
        same = ring_of[1:] == ring_of[:-1]
        geom_of = owner[ring_of[1:]]
        dx = np.diff(xy[:, 0]) * kx[geom_of]
        dy = np.diff(xy[:, 1]) * ky[geom_of]
        seg = np.where(same, np.hypot(dx, dy), 0.0)
        perimeter = np.bincount(geom_of, weights=seg, minlength=len(arr))
    return area, perimeter


def normalize_polygonal(geom: BaseGeometry | None, *, code: str | None = None) -> NormalizeResult:
    """Check one territory geometry and return it as a 2D MultiPolygon with its problems.

    ``geom`` is a shapely geometry in WGS84 lon/lat degrees (or None). ``code`` (optional) is the
    unit code; it is put in each problem's ``codes`` and message.

    Problem types (severity): ``empty_geometry`` (error), ``not_polygonal`` (error for
    points/lines/collections without polygons; warning when a GeometryCollection is reduced to
    its polygons), ``empty_part`` (warning; empty members are dropped), ``has_z`` (warning; Z is
    dropped), ``out_of_range`` (error: lon outside -180..180, lat outside -90..90, NaN or
    infinite), ``too_few_points`` (error: a ring collapses to fewer than 3 distinct points),
    ``invalid_geometry`` (error, with the GEOS reason and the location it names).
    The returned geometry is None only when there is no polygonal content.
    """
    codes = [code] if code else []
    pre = _prefix(code)
    problems: list[Problem] = []

    def add(
        type_: str, severity: Severity, message: str, location: tuple[float, float] | None = None
    ) -> None:
        problems.append(Problem(type_, severity, list(codes), pre + message, location))

    if geom is None or not isinstance(geom, BaseGeometry):
        what = "no geometry" if geom is None else f"not a geometry ({type(geom).__name__})"
        add("empty_geometry", "error", f"empty geometry: {what}")
        return NormalizeResult(None, problems)
    if geom.is_empty:
        add("empty_geometry", "error", f"empty geometry ({_type_name(geom)} EMPTY)")
        return NormalizeResult(None, problems)

    bad_count, bad_at = _bad_coordinates(geom)
    if bad_count:
        shown = "NaN/infinite" if bad_at is None else f"({bad_at[0]:g}, {bad_at[1]:g})"
        add(
            "out_of_range",
            "error",
            f"{bad_count} coordinate(s) outside lon -180..180 / lat -90..90 or not finite, "
            f"first {shown}; expected WGS84 lon/lat degrees (projected or swapped axes?)",
        )

    if shapely.has_z(geom):
        add("has_z", "warning", "geometry has Z coordinates; Z was dropped")
        geom = shapely.force_2d(geom)

    type_id = shapely.get_type_id(geom)
    if type_id == _POLYGON:
        result = MultiPolygon([geom])
    elif type_id == _MULTIPOLYGON:
        parts = list(geom.geoms)
        kept = [p for p in parts if not p.is_empty]
        if len(kept) < len(parts):
            add("empty_part", "warning", f"{len(parts) - len(kept)} empty polygon part(s) dropped")
            result = MultiPolygon(kept)
        else:
            result = geom
    elif type_id == _COLLECTION:
        polygons, dropped = _polygonal_parts(geom)
        if not polygons:
            kinds = ", ".join(sorted(set(dropped))) or "nothing"
            add(
                "not_polygonal",
                "error",
                f"GeometryCollection has no polygons (contains {kinds}); an area is required",
                _first_point(geom),
            )
            return NormalizeResult(None, problems)
        kinds = ", ".join(sorted(set(dropped)))
        note = f", dropped {len(dropped)} part(s): {kinds}" if dropped else ""
        add(
            "not_polygonal",
            "warning",
            f"GeometryCollection reduced to its {len(polygons)} polygon(s){note}",
            _first_point(geom),
        )
        result = MultiPolygon(polygons)
    else:
        add(
            "not_polygonal",
            "error",
            f"{_type_name(geom)} has no area; a Polygon or MultiPolygon is required",
            _first_point(geom),
        )
        return NormalizeResult(None, problems)

    if not bad_count:
        reason = shapely.is_valid_reason(result)
        if reason is not None and reason != "Valid Geometry":
            text, location = parse_reason(reason)
            if text.startswith("Too few points"):
                add("too_few_points", "error", f"{text} at {format_location(location)}", location)
            else:
                add(
                    "invalid_geometry",
                    "error",
                    f"invalid geometry: {text} at {format_location(location)}",
                    location,
                )
    return NormalizeResult(result, problems)


def _first_point(geom: BaseGeometry) -> tuple[float, float] | None:
    coords = shapely.get_coordinates(geom)
    if coords.size == 0 or not np.isfinite(coords[0]).all():
        return None
    return float(coords[0, 0]), float(coords[0, 1])


def _make_valid_polygonal(geom: BaseGeometry) -> MultiPolygon:
    try:
        fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    except (TypeError, ValueError, shapely.errors.UnsupportedGEOSVersionError):
        fixed = shapely.make_valid(geom)
    result = to_multipolygon(fixed)
    if not result.is_valid:  # e.g. the "linework" fallback kept overlapping parts
        result = to_multipolygon(shapely.union_all(list(result.geoms)))
    return result


def _area_change(before: float, after: float, before_m2: float, after_m2: float) -> str:
    if after == 0:
        return "nothing polygonal left (the polygon collapsed)"
    if before > 0:
        pct = 100.0 * (after - before) / before
        if abs(pct) < 1e-6:
            return "area unchanged"
        shown = f"{pct:+.1f}" if abs(pct) >= 0.1 else f"{pct:+.2g}"
        return f"area changed by {shown}%"
    return f"area changed from {before_m2:.1f} m² to {after_m2:.1f} m²"


def repair_polygonal(geom: BaseGeometry | None) -> tuple[MultiPolygon, list[str]]:
    """Make one lon/lat geometry a valid 2D MultiPolygon; return it with change descriptions.

    Steps: drop Z; keep only the polygonal parts of collections; make valid (GEOS
    ``method="structure"``, collapsed parts dropped); remove repeated points. Each applied step
    adds a human-readable line such as ``"made valid: Ring Self-intersection at
    22.716653,41.739392; area changed by -16.5%"``. An empty or non-polygonal input gives an
    empty MultiPolygon. Raises ValueError for coordinates outside lon/lat range or not finite,
    since moving them would be a guess.
    """
    changes: list[str] = []
    if geom is None or geom.is_empty:
        return MultiPolygon(), ["geometry is empty; nothing to keep"]
    bad_count, bad_at = _bad_coordinates(geom)
    if bad_count:
        raise ValueError(
            f"cannot repair: {bad_count} coordinate(s) outside lon/lat range or not finite, "
            f"first {bad_at}"
        )
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)
        changes.append("dropped Z coordinates")

    type_id = shapely.get_type_id(geom)
    if type_id not in (_POLYGON, _MULTIPOLYGON):
        polygons, dropped = _polygonal_parts(geom)
        if not polygons:
            changes.append(f"dropped non-polygonal geometry ({_type_name(geom)})")
            return MultiPolygon(), changes
        kinds = ", ".join(sorted(set(dropped)))
        if dropped:
            changes.append(f"dropped {len(dropped)} non-polygonal part(s) ({kinds})")
        geom = MultiPolygon(polygons)

    result = to_multipolygon(geom)
    empties = len(shapely.get_parts(geom)) - len(result.geoms) if type_id == _MULTIPOLYGON else 0
    if empties > 0:
        changes.append(f"dropped {empties} empty polygon part(s)")

    reason = shapely.is_valid_reason(result)
    if reason != "Valid Geometry":
        text, location = parse_reason(reason)
        before = abs(result.area)
        before_m2 = geodesic_area_perimeter(result)[0] if before == 0 else 0.0
        fixed = _make_valid_polygonal(result)
        after_m2 = geodesic_area_perimeter(fixed)[0] if before == 0 else 0.0
        where = f" at {format_location(location)}" if location else ""
        change = _area_change(before, fixed.area, before_m2, after_m2)
        changes.append(f"made valid: {text}{where}; {change}")
        result = fixed

    n_before = shapely.get_num_coordinates(result)
    try:
        deduped = shapely.remove_repeated_points(result, 0.0)
    except shapely.errors.GEOSException:
        deduped = result
    removed = n_before - shapely.get_num_coordinates(deduped)
    if removed > 0:
        deduped = to_multipolygon(deduped)
        if not deduped.is_valid:
            deduped = _make_valid_polygonal(deduped)
        result = deduped
        changes.append(f"removed {removed} repeated point(s)")

    if result.is_empty and not any("nothing polygonal left" in c for c in changes):
        changes.append("nothing polygonal left after repair")
    return result, changes
