"""Coverage checks for sibling territory units: no gaps, no overlaps, nothing outside the parent.

Grids under one community must cover it exactly, likewise micro-grids under one grid ("no gaps,
no overlaps", Beijing DB11/T 2157-2023). This module checks a flat list of units, each with a
code, a geometry and a parent code, against their parents' geometries, and can repair what it
finds.

Framework-free: only numpy, shapely (GEOS coverage functions, STRtree), pyproj and the standard
library. Geometries are WGS84 lon/lat degrees. Piece areas are m² and widths metres in a local
metric scale (GRS80 metres per degree at the piece's latitude; see
:func:`gis.geometry.local_area_m2` for why not geodesic); shared-border lengths are geodesic
metres on GRS80.

How it stays fast (10,000 micro-grids in well under a second): each sibling group is first
validated with GEOS' coverage validator (``shapely.coverage_invalid_edges``). A group whose
coverage is valid has no overlaps, so only members with invalid edges are paired with their
STRtree neighbours, only pairs whose interiors intersect (``relate_pattern``) are intersected.
Group unions come from ``shapely.coverage_union_all`` (vectorised over groups; plain union when
the coverage is invalid). Then one vectorised ``parent △ union`` finds every candidate gap or
spill-over piece; its pieces are measured in one vectorised pass and only the few above
``min_area_m2`` are split against the parent. Overlays run snap-rounded to 1e-9° (0.1 mm).

Public API
----------
- :class:`CoverageFeature` - (key, geometry, parent); plain 3-tuples and dicts also work.
- :func:`check_coverage` -> :class:`CoverageReport`
- :func:`repair_coverage` -> (key -> MultiPolygon, fixed/unfixed problems)
- :func:`check_overlaps_pairwise` - the naive O(n²) baseline, for benchmarks only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry.base import BaseGeometry

from gis.geometry import (
    GEOD,
    Problem,
    format_location,
    local_area_m2,
    local_area_perimeter,
    normalize_polygonal,
    repair_polygonal,
    to_multipolygon,
)

__all__ = [
    "CoverageFeature",
    "CoverageReport",
    "check_coverage",
    "check_overlaps_pairwise",
    "repair_coverage",
]

# Order in which problem types are listed in a report.
_TYPE_ORDER = {
    name: rank
    for rank, name in enumerate(
        [
            "duplicate_code",
            "empty_geometry",
            "not_polygonal",
            "out_of_range",
            "too_few_points",
            "invalid_geometry",
            "empty_part",
            "has_z",
            "parent_unusable",
            "overlap",
            "sliver",
            "gap",
            "outside_parent",
        ]
    )
}

# Distance (degrees, about 1 cm) within which a child counts as bordering a gap piece.
_TOUCH_DEG = 1e-7
# Snap-rounding grid (degrees, about 0.1 mm) for the overlays that only measure pieces. Nearly
# coincident borders make GEOS' floating-point overlay fail and retry; snap-rounding goes
# straight to the robust path (3-5x faster on such data, same speed on clean data).
_GRID = 1e-9


class CoverageFeature(NamedTuple):
    """One unit to check: its code, its WGS84 lon/lat geometry and its parent's code (or None)."""

    key: str
    geometry: BaseGeometry | None
    parent: str | None = None


@dataclass
class CoverageReport:
    """Result of :func:`check_coverage`: how many features were checked and what was found."""

    features: int
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of problems per type, e.g. ``{"overlap": 2, "gap": 1}``."""
        return dict(Counter(p.type for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        """Problems with severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems with severity ``"warning"``."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``{"summary": {...}, "problems": [...]}``."""
        return {
            "summary": {
                "features": self.features,
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "by_type": self.counts(),
            },
            "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------------------------
# Input preparation


def _unpack(feature: Any) -> tuple[str, BaseGeometry | None, str | None]:
    if isinstance(feature, Mapping):
        return str(feature["key"]), feature.get("geometry"), feature.get("parent")
    if isinstance(feature, tuple | list):
        key, geom, *rest = feature
        return str(key), geom, (rest[0] if rest else None)
    return str(feature.key), feature.geometry, getattr(feature, "parent", None)


@dataclass
class _Prepared:
    keys: list[str]
    parent_keys: list[str | None]
    geoms: np.ndarray  # usable geometry per feature (Polygon/MultiPolygon, 2D, valid) or None
    problems: list[Problem]
    group_of: np.ndarray  # int group id per feature, -1 when unusable
    group_keys: list[str | None]
    members: list[np.ndarray]  # group id -> feature indices
    parent_geoms: list[BaseGeometry | None]  # group id -> usable parent geometry


def _normalize_many(
    geoms: Sequence[BaseGeometry | None], keys: Sequence[str]
) -> tuple[np.ndarray, list[Problem], np.ndarray]:
    """Vectorised :func:`normalize_polygonal`: clean geometries pass untouched.

    Returns (usable geometry or None per item, problems, mask of items with no problem).
    """
    n = len(geoms)
    arr = np.empty(n, dtype=object)
    arr[:] = list(geoms)
    is_geom = shapely.is_geometry(arr)
    type_id = np.full(n, -1)
    type_id[is_geom] = shapely.get_type_id(arr[is_geom])
    clean = is_geom & np.isin(type_id, (3, 6))
    idx = np.flatnonzero(clean)
    clean[idx] = ~shapely.is_empty(arr[idx]) & ~shapely.has_z(arr[idx])
    idx = np.flatnonzero(clean)
    if idx.size:
        coords, where = shapely.get_coordinates(arr[idx], return_index=True)
        with np.errstate(invalid="ignore"):
            bad = (
                ~np.isfinite(coords).all(axis=1)
                | (np.abs(coords[:, 0]) > 180)
                | (np.abs(coords[:, 1]) > 90)
            )
        clean[idx[np.unique(where[bad])]] = False
        multi = idx[type_id[idx] == 6]
        if multi.size:
            parts, owner = shapely.get_parts(arr[multi], return_index=True)
            clean[multi[np.unique(owner[shapely.is_empty(parts)])]] = False
    idx = np.flatnonzero(clean)
    clean[idx] = shapely.is_valid(arr[idx])

    out = np.empty(n, dtype=object)
    out[clean] = arr[clean]
    problems: list[Problem] = []
    for i in np.flatnonzero(~clean):
        result = normalize_polygonal(arr[i], code=keys[i])
        problems.extend(result.problems)
        out[i] = result.geometry if result.ok else None
    return out, problems, clean


def _members(group_of: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Feature indices per group id (ascending), ignoring entries with group -1."""
    order = np.argsort(group_of, kind="stable")
    bounds = np.searchsorted(group_of[order], np.arange(n_groups + 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(n_groups)]


def _prepare(features: Iterable[Any], parents: Mapping[str, BaseGeometry | None]) -> _Prepared:
    keys: list[str] = []
    raw: list[BaseGeometry | None] = []
    parent_keys: list[str | None] = []
    for feature in features:
        key, geom, parent = _unpack(feature)
        keys.append(key)
        raw.append(geom)
        parent_keys.append(None if parent is None else str(parent))

    geoms, problems, _ = _normalize_many(raw, keys)
    # Codes are compared as strings (GeoJSON often carries them as numbers).
    parents = {str(pk): pg for pk, pg in parents.items()}

    for key, count in Counter(keys).items():
        if count > 1:
            problems.append(
                Problem(
                    "duplicate_code",
                    "error",
                    [key],
                    f"{key}: code appears {count} times; codes must be unique",
                )
            )

    group_index: dict[str | None, int] = {}
    group_of = np.full(len(keys), -1, dtype=np.int64)
    usable = shapely.is_geometry(geoms)
    for i, pk in enumerate(parent_keys):
        if usable[i]:
            group_of[i] = group_index.setdefault(pk, len(group_index))
    # Parents with no usable child still form a group: all of their area is a gap.
    for pk in parents:
        group_index.setdefault(str(pk), len(group_index))
    group_keys: list[str | None] = [None] * len(group_index)
    for pk, gid in group_index.items():
        group_keys[gid] = pk

    members = _members(group_of, len(group_keys))

    parent_geoms: list[BaseGeometry | None] = [None] * len(group_keys)
    parent_items = [(gid, pk) for gid, pk in enumerate(group_keys) if pk is not None]
    present = [(gid, pk) for gid, pk in parent_items if pk in parents]
    if present:
        pgeoms, pproblems, _ = _normalize_many(
            [parents[pk] for _, pk in present], [pk for _, pk in present]
        )
        bad_parent: dict[str, list[str]] = defaultdict(list)
        for p in pproblems:
            if p.severity == "error":
                bad_parent[p.codes[0] if p.codes else ""].append(p.message)
        for (gid, pk), pg in zip(present, pgeoms, strict=True):
            parent_geoms[gid] = pg
            if pg is None or pk in bad_parent:
                parent_geoms[gid] = None
                reasons = "; ".join(bad_parent.get(pk, ["unusable geometry"]))
                problems.append(
                    Problem(
                        "parent_unusable",
                        "warning",
                        [pk],
                        f"parent {pk} geometry cannot be used ({reasons}); gap and "
                        f"outside-parent checks skipped for its {len(members[gid])} child(ren)",
                    )
                )
    return _Prepared(
        keys, parent_keys, geoms, problems, group_of, group_keys, members, parent_geoms
    )


# --------------------------------------------------------------------------------------------
# Geometry helpers


def _explode_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten (multi)polygons/collections into polygons; return them with their source index."""
    index = np.arange(len(geoms))
    parts = np.asarray(geoms, dtype=object)
    while True:
        nonnull = shapely.is_geometry(parts)
        parts, index = parts[nonnull], index[nonnull]
        type_id = shapely.get_type_id(parts)
        if not np.isin(type_id, (4, 5, 6, 7)).any():
            break
        parts, owner = shapely.get_parts(parts, return_index=True)
        index = index[owner]
    keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    return parts[keep], index[keep]


def _safe_binary(
    op: Any, a: np.ndarray, b: np.ndarray, *, grid_size: float | None = None
) -> np.ndarray:
    """Vectorised overlay ``op(a, b)``, optionally snap-rounded to ``grid_size`` degrees.

    On a GEOS failure it retries item by item, then on a coarser grid.
    """
    try:
        return op(a, b, grid_size=grid_size)
    except shapely.errors.GEOSException:
        out = np.empty(len(a), dtype=object)
        coarser = _GRID if grid_size is None else grid_size * 10
        for k in range(len(a)):
            try:
                out[k] = op(a[k], b[k], grid_size=grid_size)
            except shapely.errors.GEOSException:
                out[k] = op(a[k], b[k], grid_size=coarser)
        return out


def _union(
    geoms: np.ndarray, coverage_valid: bool, *, grid_size: float | None = None
) -> BaseGeometry:
    if len(geoms) == 1:
        return geoms[0]
    if coverage_valid:
        return shapely.coverage_union_all(geoms)
    try:
        return shapely.union_all(geoms, grid_size=grid_size)
    except shapely.errors.GEOSException:
        return shapely.union_all(geoms, grid_size=_GRID if grid_size is None else grid_size * 10)


def _group_unions(
    geoms: np.ndarray, members: list[np.ndarray], coverage_valid: np.ndarray
) -> np.ndarray:
    """Union of each group's geometries (empty polygon for an empty group).

    Groups with a valid coverage are merged with ``coverage_union_all`` in a few vectorised
    calls (groups padded with None to a common width, by size class up to 64 members); the
    others, and bigger groups, one by one (plain union, snap-rounded).
    """
    out = np.empty(len(members), dtype=object)
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    out[sizes == 0] = shapely.from_wkt("POLYGON EMPTY")
    batched = np.zeros(len(members), dtype=bool)
    for low, high in ((1, 8), (9, 16), (17, 32), (33, 64)):
        rows = np.flatnonzero(coverage_valid & (sizes >= low) & (sizes <= high))
        if not len(rows):
            continue
        padded = np.full((len(rows), high), None, dtype=object)
        for r, g in enumerate(rows):
            padded[r, : sizes[g]] = geoms[members[g]]
        out[rows] = shapely.coverage_union_all(padded, axis=1)
        batched[rows] = True
    for g in np.flatnonzero(~batched & (sizes > 0)):
        out[g] = _union(geoms[members[g]], bool(coverage_valid[g]), grid_size=_GRID)
    return out


@dataclass
class _Piece:
    geometry: BaseGeometry
    area_m2: float
    perimeter_m: float
    location: tuple[float, float]

    @property
    def width_m(self) -> float:
        return 2.0 * self.area_m2 / self.perimeter_m if self.perimeter_m > 0 else 0.0


def _pieces(geoms: np.ndarray, min_area_m2: float) -> list[list[_Piece]]:
    """Split each geometry into polygon pieces of at least ``min_area_m2`` (local metric)."""
    result: list[list[_Piece]] = [[] for _ in range(len(geoms))]
    if len(geoms) == 0:
        return result
    polys, owner = _explode_polygons(np.asarray(geoms, dtype=object))
    if len(polys) == 0:
        return result
    area, perimeter = local_area_perimeter(polys)
    keep = np.flatnonzero(area >= min_area_m2)
    xy = shapely.get_coordinates(shapely.point_on_surface(polys[keep]))
    for n, k in enumerate(keep):
        location = (round(float(xy[n, 0]), 7), round(float(xy[n, 1]), 7))
        result[owner[k]].append(_Piece(polys[k], float(area[k]), float(perimeter[k]), location))
    return result


# --------------------------------------------------------------------------------------------
# Analysis shared by check and repair


@dataclass
class _Findings:
    overlaps: list[tuple[int, int, list[_Piece]]]  # (i, j) with keys[i] <= keys[j]
    # (group id, piece, [(bordering feature index, shared border in m)] sorted by code)
    gaps: list[tuple[int, _Piece, list[tuple[int, float]]]]
    outside: list[tuple[int, int, list[_Piece]]]  # (feature index, group id, pieces)


def _analyse(
    prep: _Prepared,
    geoms: np.ndarray,
    min_area_m2: float,
    *,
    overlaps: bool = True,
    gaps: bool = True,
    outside: bool = True,
) -> _Findings:
    n = len(geoms)
    group_of = prep.group_of
    findings = _Findings([], [], [])
    candidates = np.zeros(n, dtype=bool)
    valid_group = np.ones(len(prep.members), dtype=bool)

    for gid, idx in enumerate(prep.members):
        if len(idx) < 2:
            continue
        try:
            edges = shapely.coverage_invalid_edges(geoms[idx])
            bad = ~shapely.is_empty(edges)
        except shapely.errors.GEOSException:
            bad = np.ones(len(idx), dtype=bool)
        if bad.any():
            valid_group[gid] = False
            candidates[idx[bad]] = True

    tree: shapely.STRtree | None = None

    def get_tree() -> shapely.STRtree:
        nonlocal tree
        if tree is None:
            tree = shapely.STRtree(geoms)
        return tree

    if overlaps and candidates.any():
        cand = np.flatnonzero(candidates)
        left, right = get_tree().query(geoms[cand], predicate="intersects")
        i, j = cand[left], right
        same = (i != j) & (group_of[i] == group_of[j]) & (group_of[i] >= 0)
        i, j = i[same], j[same]
        a, b = np.minimum(i, j), np.maximum(i, j)
        pairs = np.unique(np.stack([a, b], axis=1), axis=0) if len(a) else np.zeros((0, 2), int)
        if len(pairs):
            interior = shapely.relate_pattern(geoms[pairs[:, 0]], geoms[pairs[:, 1]], "T********")
            pairs = pairs[interior]
        if len(pairs):
            inter = _safe_binary(
                shapely.intersection, geoms[pairs[:, 0]], geoms[pairs[:, 1]], grid_size=_GRID
            )
            for (a_i, b_i), pieces in zip(pairs, _pieces(inter, min_area_m2), strict=True):
                if pieces:
                    first, second = sorted((int(a_i), int(b_i)), key=lambda k: (prep.keys[k], k))
                    findings.overlaps.append((first, second, pieces))

    if not (gaps or outside):
        return findings
    with_parent = [
        gid
        for gid, pg in enumerate(prep.parent_geoms)
        if pg is not None and prep.group_keys[gid] is not None
    ]
    if not with_parent:
        return findings
    unions = _group_unions(
        geoms, [prep.members[gid] for gid in with_parent], valid_group[with_parent]
    )
    parent_arr = np.empty(len(with_parent), dtype=object)
    parent_arr[:] = [prep.parent_geoms[gid] for gid in with_parent]

    # One overlay per group: parent △ union. Its pieces of at least ~min_area contain every gap
    # or spill-over piece that can matter; only those few are then split against the parent
    # (clipped to the piece's box first, so a huge parent costs little).
    sym = _safe_binary(shapely.symmetric_difference, parent_arr, unions, grid_size=_GRID)
    polys, owner = _explode_polygons(sym)
    keep = local_area_m2(polys) >= 0.5 * min_area_m2
    polys, owner = polys[keep], owner[keep]
    if not len(polys):
        return findings
    box = shapely.bounds(polys)
    pad = 10 * _TOUCH_DEG
    local_parent = np.empty(len(polys), dtype=object)
    for k, (parent, bounds) in enumerate(zip(parent_arr[owner], box, strict=True)):
        x0, y0, x1, y1 = bounds
        local_parent[k] = shapely.clip_by_rect(parent, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    local_parent = np.where(shapely.is_valid(local_parent), local_parent, parent_arr[owner])

    if gaps:
        gap_geoms = _safe_binary(shapely.intersection, polys, local_parent, grid_size=_GRID)
        gap_pieces = _pieces(gap_geoms, min_area_m2)
        flat = [(with_parent[owner[k]], piece) for k, ps in enumerate(gap_pieces) for piece in ps]
        if flat:
            piece_arr = np.empty(len(flat), dtype=object)
            piece_arr[:] = [piece.geometry for _, piece in flat]
            src, hit = get_tree().query(piece_arr, predicate="dwithin", distance=_TOUCH_DEG)
            bordering: dict[int, list[int]] = defaultdict(list)
            for s, h in zip(src, hit, strict=True):
                if group_of[h] == flat[s][0]:
                    bordering[int(s)].append(int(h))
            for s, (gid, piece) in enumerate(flat):
                near = sorted(bordering.get(s, []), key=lambda k: prep.keys[k])
                lengths = _shared_border_m(piece.geometry, geoms[near]) if near else []
                shared = [(k, float(m)) for k, m in zip(near, lengths, strict=True) if m > 0]
                findings.gaps.append((gid, piece, shared))

    if outside:
        out_geoms = _safe_binary(shapely.difference, polys, local_parent, grid_size=_GRID)
        spill = np.unique(owner[local_area_m2(out_geoms) >= 0.5 * min_area_m2])
        child_idx = [(int(i), with_parent[k]) for k in spill for i in prep.members[with_parent[k]]]
        if child_idx:
            kids = np.array([i for i, _ in child_idx])
            kid_parents = np.empty(len(kids), dtype=object)
            kid_parents[:] = [prep.parent_geoms[gid] for _, gid in child_idx]
            inside = shapely.covered_by(geoms[kids], kid_parents)
            rest = np.flatnonzero(~inside)
            diff = _safe_binary(
                shapely.difference, geoms[kids[rest]], kid_parents[rest], grid_size=_GRID
            )
            for k, pieces in zip(rest, _pieces(diff, min_area_m2), strict=True):
                if pieces:
                    findings.outside.append((int(kids[k]), child_idx[k][1], pieces))
    return findings


# --------------------------------------------------------------------------------------------
# Public functions


def _fmt_area(area_m2: float) -> str:
    return f"{area_m2:.2f} m²" if area_m2 < 10 else f"{area_m2:,.1f} m²"


def _group_label(parent: str | None) -> str:
    return f"under parent {parent}" if parent is not None else "among units without parent"


def _largest(pieces: list[_Piece]) -> _Piece:
    return max(pieces, key=lambda p: p.area_m2)


def check_coverage(
    features: Iterable[Any],
    parents: Mapping[str, BaseGeometry | None],
    *,
    min_area_m2: float = 1.0,
    sliver_width_m: float = 2.0,
) -> CoverageReport:
    """Check that sibling units cover their parent without gaps, overlaps or spill-over.

    ``features``: items with a key (unit code), a shapely geometry in WGS84 lon/lat and a parent
    key - :class:`CoverageFeature`, 3-tuples ``(key, geometry, parent)`` or dicts with those
    keys. ``parents``: parent key -> parent geometry (lon/lat). Parents missing from the mapping
    only get sibling-overlap checks; a parent in the mapping without any child is one big gap.
    Units without a parent (None) are checked for overlaps among themselves.

    Problem types: per-feature problems from :func:`gis.geometry.normalize_polygonal` (such
    features are left out of the topology checks); ``duplicate_code``; ``parent_unusable``
    (warning); ``overlap`` (codes [a, b], one per pair, ``area_m2`` summed over pieces);
    ``gap`` (one per uncovered piece; codes [parent, bordering children...]);
    ``outside_parent`` (codes [child, parent]); ``sliver`` for overlap or gap pieces whose mean
    width 2·area/perimeter is below ``sliver_width_m`` metres (``detail`` says which). Pieces
    smaller than ``min_area_m2`` square metres are ignored as numerical noise. Locations are a
    (lon, lat) point inside the (largest) piece.
    """
    prep = _prepare(features, parents)
    findings = _analyse(prep, prep.geoms, min_area_m2)
    problems = list(prep.problems)
    keys = prep.keys

    for i, j, pieces in findings.overlaps:
        a, b = keys[i], keys[j]
        label = _group_label(prep.parent_keys[i])
        thin = [p for p in pieces if p.width_m < sliver_width_m]
        thick = [p for p in pieces if p.width_m >= sliver_width_m]
        if thick:
            area = sum(p.area_m2 for p in thick)
            big = _largest(thick)
            problems.append(
                Problem(
                    "overlap",
                    "error",
                    [a, b],
                    f"{a} and {b} overlap by {_fmt_area(area)} in {len(thick)} piece(s) {label}, "
                    f"largest at {format_location(big.location)}",
                    big.location,
                    area,
                )
            )
        if thin:
            area = sum(p.area_m2 for p in thin)
            big = _largest(thin)
            problems.append(
                Problem(
                    "sliver",
                    "error",
                    [a, b],
                    f"sliver overlap between {a} and {b} {label}: {_fmt_area(area)} in "
                    f"{len(thin)} piece(s), mean width {big.width_m:.2f} m, largest at "
                    f"{format_location(big.location)}",
                    big.location,
                    area,
                    detail="overlap",
                )
            )

    for gid, piece, near in findings.gaps:
        parent = prep.group_keys[gid] or ""
        near_codes = [keys[k] for k, _ in near]
        if not prep.members[gid].size:
            what = f"{parent} has no child units: all {_fmt_area(piece.area_m2)} uncovered"
        else:
            what = f"{_fmt_area(piece.area_m2)} of {parent} not covered by its children"
        border = f"; bordering {', '.join(near_codes)}" if near_codes else ""
        where = f" at {format_location(piece.location)}"
        if piece.width_m < sliver_width_m:
            problems.append(
                Problem(
                    "sliver",
                    "error",
                    [parent, *near_codes],
                    f"sliver gap: {what}, mean width {piece.width_m:.2f} m{where}{border}",
                    piece.location,
                    piece.area_m2,
                    detail="gap",
                )
            )
        else:
            problems.append(
                Problem(
                    "gap",
                    "error",
                    [parent, *near_codes],
                    f"gap: {what}{where}{border}",
                    piece.location,
                    piece.area_m2,
                )
            )

    for i, gid, pieces in findings.outside:
        parent = prep.group_keys[gid] or ""
        area = sum(p.area_m2 for p in pieces)
        big = _largest(pieces)
        problems.append(
            Problem(
                "outside_parent",
                "error",
                [keys[i], parent],
                f"{keys[i]} extends {_fmt_area(area)} outside its parent {parent} "
                f"({len(pieces)} piece(s)), largest at {format_location(big.location)}",
                big.location,
                area,
            )
        )

    return CoverageReport(len(keys), _sorted(problems))


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(
        problems,
        key=lambda p: (_TYPE_ORDER.get(p.type, len(_TYPE_ORDER)), p.codes, p.location or ()),
    )


def _shared_border_m(piece: BaseGeometry, others: np.ndarray) -> np.ndarray:
    """Length in metres of ``piece``'s boundary lying on (within ~1 cm of) each of ``others``.

    A boundary segment counts when its midpoint is within ``_TOUCH_DEG`` of the other
    geometry, so neighbours touching only at a corner get 0.
    """
    lengths = np.zeros(len(others))
    rings = shapely.get_rings(piece)
    starts, ends = [], []
    for ring in rings:
        xy = shapely.get_coordinates(ring)
        starts.append(xy[:-1])
        ends.append(xy[1:])
    a, b = np.concatenate(starts), np.concatenate(ends)
    _, _, seg_m = GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    mids = shapely.points((a + b) / 2.0)
    for k, other in enumerate(others):
        near = shapely.dwithin(other, mids, _TOUCH_DEG)
        lengths[k] = float(np.sum(seg_m[near]))
    return lengths


def _as_valid_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    result = to_multipolygon(geom)
    if not result.is_valid:
        result, _ = repair_polygonal(result)
    return result


def repair_coverage(
    features: Iterable[Any],
    parents: Mapping[str, BaseGeometry | None],
    *,
    min_area_m2: float = 1.0,
    sliver_width_m: float = 2.0,
    max_fill_area_m2: float | None = None,
) -> tuple[dict[str, MultiPolygon], list[Problem]]:
    """Repair sibling coverages (the ``--fix`` path); return new geometries and what was done.

    Same inputs as :func:`check_coverage` (lon/lat; areas in m²). Steps, per sibling group:

    1. invalid/3D/collection geometries are repaired with :func:`repair_polygonal`;
    2. parts of a child outside its parent (>= ``min_area_m2``) are clipped off;
    3. overlaps (>= ``min_area_m2``) stay with the sibling whose code sorts first, the other
       sibling gets the difference (a sibling lying entirely inside another is left alone and
       reported unfixed);
    4. each gap piece (>= ``min_area_m2``) is merged into the sibling sharing the longest
       border with it (geodesic metres); pieces with no bordering sibling, or larger than
       ``max_fill_area_m2`` (if given), stay and are reported unfixed.

    Overlaps and gaps thinner than ``sliver_width_m`` metres are labelled ``sliver`` as in
    :func:`check_coverage`. Returns ``(key -> valid 2D MultiPolygon, problems)``; each problem
    says whether it was ``fixed`` and, if so, the ``change`` made. Units whose geometry cannot
    be repaired (empty, no polygons, coordinates out of range) are left out of the mapping.
    Units without problems are returned unchanged (as MultiPolygons). Raises ValueError on
    duplicate codes.
    """
    feature_list = list(features)
    prep = _prepare(feature_list, parents)
    dupes = [p for p in prep.problems if p.type == "duplicate_code"]
    if dupes:
        raise ValueError("; ".join(p.message for p in dupes))
    keys = prep.keys
    problems: list[Problem] = []
    geoms = prep.geoms.copy()

    # 1. Per-feature repair.
    by_code: dict[str, list[Problem]] = defaultdict(list)
    for p in prep.problems:
        if p.type == "parent_unusable":
            problems.append(p)
        elif p.codes:
            by_code[p.codes[0]].append(p)
    raw = {key: _unpack(f)[1] for key, f in zip(keys, feature_list, strict=True)}
    for i, key in enumerate(keys):
        if key not in by_code:
            continue
        try:
            fixed, changes = repair_polygonal(raw[key])
            error = None
        except ValueError as exc:
            fixed, changes, error = MultiPolygon(), [], str(exc)
        usable = not fixed.is_empty and fixed.is_valid
        for p in by_code[key]:
            p.fixed = usable
            p.change = "; ".join(changes) if usable else None
            if not usable:
                p.message += f" - not repairable{': ' + error if error else ''}; unit left out"
            problems.append(p)
        if usable:
            geoms[i] = fixed
            if prep.group_of[i] < 0:
                _join_group(prep, i)
        else:
            geoms[i] = None
    _rebuild_members(prep, geoms)

    # 2. Clip parts outside the parent.
    findings = _analyse(prep, geoms, min_area_m2, overlaps=False, gaps=False)
    for i, gid, pieces in findings.outside:
        parent = prep.group_keys[gid] or ""
        area = sum(p.area_m2 for p in pieces)
        big = _largest(pieces)
        clipped = _as_valid_multipolygon(
            _safe_binary(
                shapely.intersection,
                geoms[i : i + 1],
                np.array([prep.parent_geoms[gid]], dtype=object),
            )[0]
        )
        ok = not clipped.is_empty
        if ok:
            geoms[i] = clipped
        problems.append(
            Problem(
                "outside_parent",
                "error",
                [keys[i], parent],
                f"{keys[i]} extended {_fmt_area(area)} outside its parent {parent}, largest "
                f"piece at {format_location(big.location)}"
                + ("" if ok else " - it lies entirely outside; not clipped"),
                big.location,
                area,
                fixed=ok,
                change=f"clipped {_fmt_area(area)} of {keys[i]} outside {parent}" if ok else None,
            )
        )

    # 3. Overlaps: the code sorting first keeps the overlap.
    findings = _analyse(prep, geoms, min_area_m2, gaps=False, outside=False)
    original = geoms.copy()
    takers: dict[int, list[tuple[int, list[_Piece]]]] = defaultdict(list)
    for i, j, pieces in findings.overlaps:
        takers[j].append((i, pieces))
    for j, overs in sorted(takers.items(), key=lambda item: keys[item[0]]):
        before = original[j]
        earlier = np.array([original[i] for i, _ in overs], dtype=object)
        reduced = _as_valid_multipolygon(
            _safe_binary(
                shapely.difference,
                np.array([before], dtype=object),
                np.array([_union(earlier, False)], dtype=object),
            )[0]
        )
        for i, pieces in overs:
            area = sum(p.area_m2 for p in pieces)
            big = _largest(pieces)
            type_, detail = _kind(pieces, sliver_width_m, "overlap")
            message = (
                f"{keys[i]} and {keys[j]} overlapped by {_fmt_area(area)} "
                f"{_group_label(prep.parent_keys[j])}, largest at {format_location(big.location)}"
            )
            if reduced.is_empty:
                problems.append(
                    Problem(
                        type_,
                        "error",
                        [keys[i], keys[j]],
                        message + f" - {keys[j]} lies entirely inside earlier sibling(s); "
                        "resolve by hand",
                        big.location,
                        area,
                        detail=detail,
                    )
                )
                continue
            parts = len(reduced.geoms)
            split = f"; {keys[j]} is now in {parts} parts" if parts > 1 else ""
            problems.append(
                Problem(
                    type_,
                    "error",
                    [keys[i], keys[j]],
                    message,
                    big.location,
                    area,
                    fixed=True,
                    change=f"overlap kept by {keys[i]}; {_fmt_area(area)} removed from "
                    f"{keys[j]}{split}",
                    detail=detail,
                )
            )
        if not reduced.is_empty:
            geoms[j] = reduced

    # 4. Gaps: merge each piece into the sibling with the longest shared border.
    findings = _analyse(prep, geoms, min_area_m2, overlaps=False, outside=False)
    additions: dict[int, list[BaseGeometry]] = defaultdict(list)
    for gid, piece, near in findings.gaps:
        parent = prep.group_keys[gid] or ""
        lengths = [(length, k) for k, length in near]
        where = format_location(piece.location)
        type_, detail = _kind([piece], sliver_width_m, "gap")
        too_big = max_fill_area_m2 is not None and piece.area_m2 > max_fill_area_m2
        if not lengths or too_big:
            why = (
                f"is larger than {_fmt_area(max_fill_area_m2 or 0)}; assign it by hand"
                if too_big
                else "borders no child"
            )
            problems.append(
                Problem(
                    type_,
                    "error",
                    [parent, *(keys[k] for _, k in lengths)],
                    f"gap of {_fmt_area(piece.area_m2)} in {parent} at {where} {why}; not filled",
                    piece.location,
                    piece.area_m2,
                    detail=detail,
                )
            )
            continue
        # Longest border wins; on a tie the code sorting first (near is sorted by code and
        # max keeps the first maximum).
        length, k = max(lengths, key=lambda item: item[0])
        additions[k].append(piece.geometry)
        problems.append(
            Problem(
                type_,
                "error",
                [parent, keys[k]],
                f"gap of {_fmt_area(piece.area_m2)} in {parent} at {where}",
                piece.location,
                piece.area_m2,
                fixed=True,
                change=f"merged into {keys[k]} (shared border {length:,.1f} m)",
                detail=detail,
            )
        )
    for k, extra in additions.items():
        geoms[k] = _as_valid_multipolygon(_union(np.array([geoms[k], *extra], dtype=object), False))

    result = {
        keys[i]: _as_valid_multipolygon(geoms[i]) for i in range(len(keys)) if geoms[i] is not None
    }
    return result, _sorted(problems)


def _kind(pieces: list[_Piece], sliver_width_m: float, base: str) -> tuple[str, str | None]:
    """("sliver", base) when every piece is thinner than ``sliver_width_m``, else (base, None)."""
    if all(p.width_m < sliver_width_m for p in pieces):
        return "sliver", base
    return base, None


def _join_group(prep: _Prepared, i: int) -> None:
    pk = prep.parent_keys[i]
    if pk in prep.group_keys:
        prep.group_of[i] = prep.group_keys.index(pk)
    else:
        prep.group_keys.append(pk)
        prep.parent_geoms.append(None)
        prep.members.append(np.zeros(0, dtype=np.int64))
        prep.group_of[i] = len(prep.group_keys) - 1


def _rebuild_members(prep: _Prepared, geoms: np.ndarray) -> None:
    prep.group_of[~shapely.is_geometry(geoms)] = -1
    prep.members = _members(prep.group_of, len(prep.group_keys))


def check_overlaps_pairwise(
    geoms: Sequence[BaseGeometry], *, min_area_m2: float = 1.0
) -> list[tuple[int, int, float]]:
    """Naive baseline: test every pair (i < j) without a spatial index.

    Returns ``(i, j, overlap area in m²)`` for pairs overlapping by at least ``min_area_m2``.
    O(n²) predicate tests (vectorised per row); only for benchmarking against the STRtree path.
    """
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    result: list[tuple[int, int, float]] = []
    for i in range(len(arr) - 1):
        rest = arr[i + 1 :]
        hits = np.flatnonzero(shapely.intersects(arr[i], rest))
        if not hits.size:
            continue
        inter = shapely.intersection(arr[i], rest[hits])
        area = local_area_m2(inter)
        for h, a in zip(hits, area, strict=True):
            if a >= min_area_m2:
                result.append((i, i + 1 + int(h), float(a)))
    return result
