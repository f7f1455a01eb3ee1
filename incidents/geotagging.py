"""Geotagging incidents: which micro-grid, grid, community/village and street hold a point.

Two paths, one answer:
- `geotag_point` for a single intake (the API, the report form): the database lookup of
  grids.lookup, at the incident's report date.
- `BulkGeotagger` for imports of many points: the boundary versions of the chain kinds are
  loaded once and points are tagged in vectorised batches, each at its own date (a version
  counts when valid_from <= date < valid_to). Most points are settled by the edges near
  them or, away from every edge, by one containment test; the rest go through the
  level-by-level rule itself (see `_Period`).

Both apply the same rules as grids.lookup: a point covered by several units of a level (on a
shared edge) goes to the one under the unit chosen one level up, then the lowest code; units
of the level within `near_m` metres that were not chosen are the "near boundary" candidates.
A point outside every micro-grid is "unassigned" (the levels it does fall in are still set).
"""

import datetime
import json
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from django.conf import settings
from django.contrib.gis.db.models.functions import AsWKB

from grids.kinds import UnitKind
from grids.lookup import METRES_PER_DEGREE, locate
from grids.models import BoundaryVersion

LEVELS = (
    ("street", (UnitKind.STREET,)),
    ("community", (UnitKind.COMMUNITY, UnitKind.VILLAGE)),
    ("grid", (UnitKind.GRID,)),
    ("microgrid", (UnitKind.MICROGRID,)),
)
MICRO = len(LEVELS) - 1  # the level index of micro-grids


@dataclass
class Geotag:
    """Unit ids per level (None when the point is outside every unit of that level), the
    boundary version of the deepest unit found, and the flags."""

    street: int | None = None
    community: int | None = None
    grid: int | None = None
    microgrid: int | None = None
    version: int | None = None
    near_boundary: bool = False
    candidates: list[dict] = field(default_factory=list)

    @property
    def deepest(self) -> int | None:
        """The id of the deepest unit holding the point (None outside every unit): the
        unit the incident belongs to (incidents.selectors.incidents_for)."""
        return next(
            (u for u in (self.microgrid, self.grid, self.community, self.street) if u is not None),
            None,
        )

    @property
    def unassigned(self) -> bool:
        return self.microgrid is None

    def incident_fields(self) -> dict:
        """The placement fields of an Incident (incidents.models) for this geotag."""
        return {
            "street_id": self.street,
            "community_id": self.community,
            "grid_id": self.grid,
            "unit_id": self.microgrid,
            "boundary_version_id": self.version,
            "unassigned": self.unassigned,
            "near_boundary": self.near_boundary,
            "boundary_candidates": self.candidates,
        }


def geotag_point(lon: float, lat: float, at: datetime.date, near_m: float | None = None) -> Geotag:
    """Geotag one WGS84 point as of `at` through the database lookup."""
    result = locate(lon, lat, at, near_m)
    # Incidents are placed in street, community/village, grid and micro-grid: only those
    # boundaries make a report "near a boundary" (a courtyard wall inside a micro-grid does
    # not, as in BulkGeotagger).
    candidates = [n for n in result["neighbours"] if n["kind"] != UnitKind.COURTYARD]
    tag = Geotag(near_boundary=bool(candidates), candidates=candidates)
    for unit in result["chain"]:
        for level, kinds in LEVELS:
            if unit["kind"] in kinds:
                setattr(tag, level, unit["id"])
                tag.version = unit["boundary_version_id"]
    return tag


class BulkGeotagger:
    """Vectorised geotagging of many points against all boundary versions of the chain.

    The versions are loaded once. The days on which a version starts or ends cut time into
    periods in which one set of versions is valid; a period's indexes (`_Period`) are built
    the first time a point falls in it and reused for every later point of that period.
    """

    def __init__(self, near_m: float | None = None):
        self.near_m = settings.WEIGE_NEAR_BOUNDARY_M if near_m is None else near_m
        kinds = [k for _level, ks in LEVELS for k in ks]
        rows, wkbs = _versions(kinds)
        self.version_id = np.array([r[0] for r in rows], dtype=np.int64)
        self.unit_id = np.array([r[1] for r in rows], dtype=np.int64)
        level_of = {k: i for i, (_level, ks) in enumerate(LEVELS) for k in ks}
        self.level = np.array([level_of[r[2]] for r in rows], dtype=np.int8)
        self.code = np.array([r[3] for r in rows], dtype=object)
        self.kind = np.array([r[2] for r in rows], dtype=object)
        self.name = np.array([r[8] for r in rows], dtype=object)
        self.valid_dates = [(r[5], r[6]) for r in rows]
        self.parent_id = np.array([r[4] or -1 for r in rows], dtype=np.int64)
        self.valid_from = np.array([r[5].toordinal() for r in rows], dtype=np.int64)
        far = datetime.date.max.toordinal()
        self.valid_to = np.array([r[6].toordinal() if r[6] else far for r in rows], dtype=np.int64)
        self.geoms = shapely.from_wkb(wkbs) if wkbs else np.array([], dtype=object)
        shapely.prepare(self.geoms)  # many point tests per polygon
        self.tree = _strtree(self.geoms)
        # codes rank: ties go to the lowest code
        self.code_rank = np.argsort(np.argsort(self.code.astype(str)))
        self.breaks = np.unique(np.concatenate([self.valid_from, self.valid_to]))
        self._periods: dict[int, _Period] = {}
        self._json_heads: dict[int, str] = {}
        self._json_codes: dict[int, str] = {}

    def tag(self, lons, lats, dates) -> "BulkTags":
        """Geotags for WGS84 points, each at its own date: `dates` are datetime.date objects
        or an integer array of their ordinals (date.toordinal()), one per point.

        Points deep inside a micro-grid take it and its ancestors at once; points within a
        few metres of its edge add the units of the level within `near_m`; points on an edge,
        outside every micro-grid or in units that break the nesting go through the exact
        level-by-level rule (see `_Period`). All three give the same answer as that rule.
        """
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        n = len(lons)
        result = BulkTags(n)
        if not n:
            return result
        if isinstance(dates, np.ndarray) and dates.dtype.kind in "iu":
            days = dates.astype(np.int64, copy=False)
        else:
            days = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=n)
        if not len(self.breaks):
            return result
        period_of = np.searchsorted(self.breaks, days, side="right")
        periods = np.unique(period_of)
        if len(periods) == 1:
            self._period(int(periods[0])).tag(result, lons, lats, days)
            return result
        for period in periods:
            where = np.flatnonzero(period_of == period)
            sub = BulkTags(len(where))
            self._period(int(period)).tag(sub, lons[where], lats[where], days[where])
            result.merge(where, sub)
        return result

    def _period(self, index: int) -> "_Period":
        period = self._periods.get(index)
        if period is None:
            # the period's days are [breaks[index - 1], breaks[index])
            first = int(self.breaks[index - 1]) if index else int(self.breaks[0]) - 1
            period = self._periods[index] = _Period(self, first)
        return period

    def _tag_exact(self, lons: np.ndarray, lats: np.ndarray, days: np.ndarray) -> "BulkTags":
        """The level-by-level rule of grids.lookup, vectorised over points."""
        n = len(lons)
        points = shapely.points(lons, lats)
        # Candidates: polygons whose bounding box meets a box of ±near_m around the point (a
        # bounding-box query, cheap); the exact tests below run only on those.
        dlat = self.near_m / METRES_PER_DEGREE
        dlon = dlat / np.maximum(np.cos(np.radians(lats)), 1e-6)
        boxes = shapely.box(lons - dlon, lats - dlat, lons + dlon, lats + dlat)
        p_idx, g_idx = self.tree.query(boxes)
        valid = (self.valid_from[g_idx] <= days[p_idx]) & (days[p_idx] < self.valid_to[g_idx])
        p_idx, g_idx = p_idx[valid], g_idx[valid]
        geoms, hit_points = self.geoms[g_idx], points[p_idx]
        covers = shapely.covers(geoms, hit_points)
        interior = np.zeros(len(p_idx), dtype=bool)
        inside = np.flatnonzero(covers)
        interior[inside] = shapely.contains(geoms[inside], hit_points[inside])
        distance_m = np.zeros(len(p_idx))
        distance_m[:] = np.inf
        distance_m[covers] = 0.0
        outside = np.flatnonzero(~covers)
        # Prepared-geometry distance test first, in degrees with the point's (larger)
        # longitude radius: only those within reach need the metric distance.
        reach = dlon[p_idx[outside]]
        outside = outside[shapely.dwithin(geoms[outside], hit_points[outside], reach)]
        if outside.size:
            pi, gi = p_idx[outside], g_idx[outside]
            distance_m[outside] = _metres(self.geoms[gi], points[pi], lats[pi])
        result = BulkTags(n)
        parent = np.full(n, -1, dtype=np.int64)
        hit_level = self.level[g_idx]
        for level_index, (level, _kinds) in enumerate(LEVELS):
            at_level = np.flatnonzero(hit_level == level_index)
            if not at_level.size:
                continue
            cover_hits = at_level[covers[at_level]]
            chosen_hit_of_point = np.full(n, -1, dtype=np.int64)
            if cover_hits.size:
                pts, gs = p_idx[cover_hits], g_idx[cover_hits]
                mismatch = (parent[pts] != -1) & (self.parent_id[gs] != parent[pts])
                order = np.lexsort((self.code_rank[gs], ~interior[cover_hits], mismatch, pts))
                sorted_pts = pts[order]
                first = np.ones(len(order), dtype=bool)
                first[1:] = sorted_pts[1:] != sorted_pts[:-1]
                chosen_hits = cover_hits[order[first]]
                chosen_pts = sorted_pts[first]
                units = self.unit_id[g_idx[chosen_hits]]
                getattr(result, level)[chosen_pts] = units
                result.version[chosen_pts] = self.version_id[g_idx[chosen_hits]]
                parent[chosen_pts] = units
                chosen_hit_of_point[chosen_pts] = g_idx[chosen_hits]
            # neighbours: other units of the level within near_m of a point with a choice
            pts = p_idx[at_level]
            near = (
                (chosen_hit_of_point[pts] != -1)
                & (g_idx[at_level] != chosen_hit_of_point[pts])
                & (distance_m[at_level] <= self.near_m)
            )
            near_hits = at_level[near]
            for k in near_hits[np.lexsort((self.code_rank[g_idx[near_hits]], p_idx[near_hits]))]:
                point, other = int(p_idx[k]), int(g_idx[k])
                result.near_boundary[point] = True
                result.candidates.setdefault(point, []).append(
                    self.candidate(other, distance_m[k], chosen_hit_of_point[point])
                )
        return result

    def candidate(self, other: int, metres: float, chosen: int) -> dict:
        """A neighbouring unit as grids.lookup.locate lists it (same keys, same order)."""
        valid_from, valid_to = self.valid_dates[other]
        return {
            "id": int(self.unit_id[other]),
            "kind": str(self.kind[other]),
            "code": str(self.code[other]),
            "name": str(self.name[other]),
            "boundary_version_id": int(self.version_id[other]),
            "valid_from": valid_from.isoformat(),
            "valid_to": valid_to.isoformat() if valid_to else None,
            "distance_m": round(float(metres), 2),
            "neighbour_of": str(self.code[chosen]),
        }

    def candidate_json(self, other: int, metres: float, chosen: int) -> str:
        """candidate() as json.dumps writes it, from text kept per version: the same
        characters, without making the dict (a bulk import makes hundreds of thousands)."""
        head = self._json_heads.get(other)
        if head is None:
            fields = self.candidate(other, 0.0, chosen)
            del fields["distance_m"], fields["neighbour_of"]  # the last two keys
            head = self._json_heads[other] = json.dumps(fields)[:-1] + ', "distance_m": '
        code = self._json_codes.get(chosen)
        if code is None:
            code = self._json_codes[chosen] = json.dumps(str(self.code[chosen]))
        return f'{head}{round(float(metres), 2)!r}, "neighbour_of": {code}}}'


def _versions(kinds: list[str]) -> tuple[list[tuple], list[bytes]]:
    """The boundary versions of units of these kinds, by id: (id, unit_id, kind, code,
    parent_id, valid_from, valid_to, None, name) and their geometries as WKB, read in one
    query without making a GEOS geometry of each."""
    queryset = (
        BoundaryVersion.objects.filter(unit__kind__in=kinds)
        .order_by("id")
        .annotate(wkb=AsWKB("geom"))
        .values_list(
            "id",
            "unit_id",
            "unit__kind",
            "unit__code",
            "parent_id",
            "valid_from",
            "valid_to",
            "wkb",
            "name",
        )
    )
    rows, wkbs = [], []
    for row in queryset:
        wkbs.append(bytes(row[7]))
        rows.append((*row[:7], None, row[8]))
    return rows, wkbs


class _Period:
    """The indexes of one period (one set of valid versions) of a BulkGeotagger.

    Every micro-grid has a "core": itself shrunk by CORE_DEG (about a centimetre). It is
    "clean" when its grid, community/village and street (by the parents recorded on the
    versions) exist and cover the core, and no unit of the chain kinds outside that chain
    meets the core. For a point inside the core of a clean micro-grid the level-by-level
    rule must choose the micro-grid and its ancestors (nothing else covers the point), so:

    - a point with an edge of a micro-grid within reach (the edges are indexed by their
      boxes grown by a little more than `near_m`) is in the core of a clean micro-grid if
      the side of its nearest micro-grid edge it lies on says so (`_inside`): it gets the
      chain and the units within `near_m`, measured over the edges near it as the rule
      measures them (`_near`);
    - a point with no micro-grid edge within reach that lies in a clean micro-grid is in
      its core, and farther than `near_m` from every unit of the chain kinds (none meets
      the core, which holds every point within that distance): the chain, no candidates;
    - the rest (outside every micro-grid, in one that is not clean) goes through the rule
      itself (`BulkGeotagger._tag_exact`).
    """

    CORE_DEG = 1e-7  # degrees: 1.1 cm north-south, less east-west
    REACH = 1.05  # edges are indexed this many times near_m around (plus 2 CORE_DEG)

    def __init__(self, tagger: BulkGeotagger, day: int):
        t = tagger
        self.tagger = t
        self.day = day
        valid = (t.valid_from <= day) & (day < t.valid_to)
        self.any_valid = bool(valid.any())
        micro = np.flatnonzero(valid & (t.level == MICRO))
        self.micro = micro
        self.chain = np.full((len(micro), MICRO), -1, dtype=np.int64)  # street, community, grid
        self.core = shapely.buffer(t.geoms[micro], -self.CORE_DEG, quad_segs=4)
        shapely.prepare(self.core)
        clean = ~shapely.is_empty(self.core) & shapely.is_valid(t.geoms[micro])
        if len(micro):
            clean &= self._chains(valid)
            clean &= self._alone(valid)
        self.clean = clean
        self.clean_micro = np.flatnonzero(clean)  # position in self.micro of each indexed
        self.micro_index = _CellIndex(shapely.bounds(t.geoms[micro[clean]]))  # their boxes
        # position in self.micro of a version index (-1: not a micro-grid of the period)
        self.micro_at = np.full(len(t.geoms), -1, dtype=np.int64)
        self.micro_at[micro] = np.arange(len(micro))
        self._segments(valid, reach_m=self.REACH * t.near_m + 2 * self.CORE_DEG * METRES_PER_DEGREE)

    def _chains(self, valid: np.ndarray) -> np.ndarray:
        """Fill self.chain from the versions' parents; True where the chain is complete and
        each ancestor covers the core."""
        t = self.tagger
        upper = np.flatnonzero(valid & (t.level < MICRO))
        table = np.full(int(t.unit_id.max()) + 2, -1, dtype=np.int64)
        table[t.unit_id[upper]] = upper
        ok = np.ones(len(self.micro), dtype=bool)
        if len(np.unique(t.unit_id[valid])) != int(valid.sum()):
            ok[:] = False  # a unit with two versions at once: leave everything to the rule
        child = self.micro
        for level in (MICRO - 1, MICRO - 2, MICRO - 3):  # grid, community, street
            parent_unit = t.parent_id[child]
            parent_unit = np.where((parent_unit >= 0) & (parent_unit < len(table)), parent_unit, -1)
            version = np.where(parent_unit >= 0, table[parent_unit], -1)
            ok &= version >= 0
            ok &= np.where(version >= 0, t.level[version] == level, False)
            self.chain[:, level] = np.where(ok, version, -1)
            child = np.where(ok, version, 0)
        covered = np.flatnonzero(ok)
        for level in range(MICRO):
            parents = t.geoms[self.chain[covered, level]]
            inside = shapely.covers(parents, self.core[covered])
            ok[covered[~inside]] = False
            covered = covered[inside]
        return ok

    def _alone(self, valid: np.ndarray) -> np.ndarray:
        """False for the micro-grids whose core a unit outside their chain meets."""
        i, j = self.tagger.tree.query(self.core)  # boxes that meet: test only the others
        other = valid[j] & (j != self.micro[i])
        for level in range(MICRO):
            other &= j != self.chain[i, level]
        i, j = i[other], j[other]
        meets = shapely.intersects(self.core[i], self.tagger.geoms[j])  # the core prepared
        ok = np.ones(len(self.micro), dtype=bool)
        ok[i[meets]] = False
        return ok

    def tag(self, result: "BulkTags", lons, lats, days) -> None:
        t = self.tagger
        n = len(lons)
        if not self.any_valid:
            return
        todo = np.ones(n, dtype=bool)
        # 1. near an edge of a clean micro-grid
        edges = self._edges(lons, lats)
        k, near_edge = self._inside(edges, lons, lats)
        found = np.flatnonzero(k >= 0)
        self._fill(result, found, k[found])
        self._near(result, k, edges, lats)
        todo[found] = False
        # 2. farther than the reach from every micro-grid edge: deep inside a clean
        # micro-grid (the chain, no candidates) or away from them all
        deep = np.flatnonzero(~near_edge)
        p, c = self.micro_index.pairs(lons[deep], lats[deep])
        p, c = deep[p], self.clean_micro[c]
        order = np.argsort(c, kind="stable")  # one polygon's points together
        p, c = p[order], c[order]
        inside = shapely.contains_xy(t.geoms[self.micro[c]], lons[p], lats[p])
        p, c = p[inside], c[inside]
        once = np.bincount(p, minlength=n)[p] == 1
        p, c = p[once], c[once]
        self._fill(result, p, c)
        todo[p] = False
        # 3. everything else: the level-by-level rule
        rest = np.flatnonzero(todo)
        if rest.size:
            result.merge(rest, t._tag_exact(lons[rest], lats[rest], days[rest]))

    def _fill(self, result: "BulkTags", p: np.ndarray, k: np.ndarray) -> None:
        t = self.tagger
        g = self.micro[k]
        result.microgrid[p] = t.unit_id[g]
        result.version[p] = t.version_id[g]
        for level, (name, _kinds) in enumerate(LEVELS[:MICRO]):
            getattr(result, name)[p] = t.unit_id[self.chain[k, level]]

    def _segments(self, valid: np.ndarray, reach_m: float) -> None:
        """The edges of the valid versions (all rings), each distinct segment once with the
        versions whose rings hold it (a shared edge is in the rings of the units on both
        sides and of their ancestors) and the micro-grid whose inside lies to its left
        (`seg_left`) and to its right (`seg_right`), looking from seg_a to seg_b (-1: none,
        or more than one); indexed by their boxes grown by `reach_m` metres."""
        t = self.tagger
        versions = np.flatnonzero(valid)
        parts, part_of = shapely.get_parts(t.geoms[versions], return_index=True)
        rings, ring_of = shapely.get_rings(parts, return_index=True)
        exterior = np.ones(len(rings), dtype=bool)  # a part's first ring is its shell
        exterior[1:] = ring_of[1:] != ring_of[:-1]
        # the inside is to the left of a counter-clockwise shell and of a clockwise hole
        inside_left = exterior == shapely.is_ccw(rings)
        coords, coord_of = shapely.get_coordinates(rings, return_index=True)
        same = coord_of[:-1] == coord_of[1:]
        a, b = coords[:-1][same], coords[1:][same]
        ring = coord_of[:-1][same]
        owner = versions[part_of[ring_of[ring]]]
        # number the distinct vertices in (x, y) order; a segment runs from its lower
        # vertex to its higher one, whichever way its ring runs
        _xy, vertex = np.unique(coords.view(np.complex128).ravel(), return_inverse=True)
        va, vb = vertex[:-1][same], vertex[1:][same]
        swap = va > vb
        a, b = np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)
        left = inside_left[ring] != swap
        key = np.minimum(va, vb) * (int(vertex.max(initial=0)) + 1) + np.maximum(va, vb)
        by_segment = np.argsort(key)  # each segment's instances together
        key = key[by_segment]
        new = np.ones(len(key), dtype=bool)
        new[1:] = key[1:] != key[:-1]
        starts = np.flatnonzero(new)
        first = by_segment[starts]
        inverse = np.empty(len(key), dtype=np.int64)
        inverse[by_segment] = np.cumsum(new) - 1
        self.seg_a, self.seg_b = a[first], b[first]
        self.seg_owners = owner[by_segment]
        self.seg_start = np.append(starts, len(key))
        micro = t.level[owner] == MICRO
        for name, side in (("seg_left", micro & left), ("seg_right", micro & ~left)):
            found = np.full(len(first), -1, dtype=np.int64)
            found[inverse[side]] = owner[side]
            found[np.bincount(inverse[side], minlength=len(first)) > 1] = -1
            setattr(self, name, found)
        lat = float(np.abs(coords[:, 1]).max()) if len(coords) else 0.0
        dlat = reach_m / METRES_PER_DEGREE
        dlon = dlat / max(math.cos(math.radians(min(lat, 89.9))), 1e-6)
        lo = np.minimum(self.seg_a, self.seg_b) - (dlon, dlat)
        hi = np.maximum(self.seg_a, self.seg_b) + (dlon, dlat)
        self.seg_index = _CellIndex(np.column_stack([lo, hi]))

    def _edges(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """(point, segment) for the segments in reach of each point, with the position of
        the segment's point nearest to it (0 at seg_a, 1 at seg_b) and the offset from the
        point to that nearest point, in degrees."""
        q, seg = self.seg_index.pairs(x, y)
        a, b = self.seg_a[seg], self.seg_b[seg]
        px, py = x[q], y[q]
        ab = b - a
        length2 = (ab * ab).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = ((px - a[:, 0]) * ab[:, 0] + (py - a[:, 1]) * ab[:, 1]) / length2
        f = np.clip(np.nan_to_num(f), 0.0, 1.0)
        dx = a[:, 0] + f * ab[:, 0] - px
        dy = a[:, 1] + f * ab[:, 1] - py
        return q, seg, f, dx, dy

    def _inside(self, edges: tuple, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """For each point, the clean micro-grid (position in self.micro) whose core holds
        it, found from its nearest micro-grid edge (-1 where there is none), and whether a
        micro-grid edge is within reach of it at all.

        If q, the point of a micro-grid's edges nearest to the point, lies inside one edge
        (not at its ends), the segment from the point to q meets no edge, so the point is
        inside the micro-grid exactly when it is on the inside of that edge; and it is in
        the micro-grid's core when it is more than twice CORE_DEG from every edge (the
        buffer that made the core removes less than that). Where q is an end of the edge
        or the point is that close to it, the cores of the micro-grids on both sides of
        the edge are asked."""
        q, seg, f, dx, dy = edges
        k = np.full(len(x), -1, dtype=np.int64)
        of_micro = np.flatnonzero((self.seg_left[seg] >= 0) | (self.seg_right[seg] >= 0))
        near_edge = np.zeros(len(x), dtype=bool)
        near_edge[q[of_micro]] = True
        best = of_micro[_first_least(q[of_micro], dx[of_micro] ** 2 + dy[of_micro] ** 2)]
        pts, s = q[best], seg[best]
        a, b = self.seg_a[s], self.seg_b[s]
        cross = (b[:, 0] - a[:, 0]) * (y[pts] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x[pts] - a[:, 0])
        inner = f[best]
        sure = (
            (inner > 1e-9)
            & (inner < 1 - 1e-9)
            & (dx[best] ** 2 + dy[best] ** 2 > (2 * self.CORE_DEG) ** 2)
        )
        version = np.where(cross > 0, self.seg_left[s], self.seg_right[s])
        self._take(k, pts[sure], version[sure])
        for side in (self.seg_left, self.seg_right):
            ask = np.flatnonzero(~sure)
            ask = ask[k[pts[ask]] == -1]
            version = side[s[ask]]
            ask, version = ask[version >= 0], version[version >= 0]
            at = self.micro_at[version]
            ask, at = ask[at >= 0], at[at >= 0]
            ask, at = ask[self.clean[at]], at[self.clean[at]]
            inside = shapely.contains_xy(self.core[at], x[pts[ask]], y[pts[ask]])
            k[pts[ask[inside]]] = at[inside]
        return k, near_edge

    def _take(self, k: np.ndarray, pts: np.ndarray, version: np.ndarray) -> None:
        """k[pts] = the position in self.micro of each version, where it is a clean
        micro-grid of the period."""
        at = np.where(version >= 0, self.micro_at[version], -1)
        clean = (at >= 0) & self.clean[np.maximum(at, 0)]
        k[pts[clean]] = at[clean]

    def _near(self, result: "BulkTags", k: np.ndarray, edges: tuple, y) -> None:
        """Add the neighbours within near_m of the points found inside clean micro-grids k
        (-1 where not), from their `edges` (`_edges`).

        Measured as the level-by-level rule measures them: the nearest point of the unit in
        degrees (over the edges within reach), then metres with longitude scaled at the
        point's latitude."""
        t = self.tagger
        q, seg, _f, dx, dy = edges
        keep = np.flatnonzero(k[q] >= 0)
        q, seg, dx, dy = q[keep], seg[keep], dx[keep], dy[keep]
        d2 = dx * dx + dy * dy
        dlon = t.near_m / METRES_PER_DEGREE / np.maximum(np.cos(np.radians(y)), 1e-6)
        within = np.flatnonzero(d2 <= dlon[q] ** 2)
        # the versions whose rings hold each segment within reach, but the point's own chain
        seg = seg[within]
        count = self.seg_start[seg + 1] - self.seg_start[seg]
        pair = np.repeat(within, count)
        offset = np.arange(len(pair)) - np.repeat(np.cumsum(count) - count, count)
        owner = self.seg_owners[np.repeat(self.seg_start[seg], count) + offset]
        q, dx, dy, d2 = q[pair], dx[pair], dy[pair], d2[pair]
        kq = k[q]
        mine = owner == self.micro[kq]
        for level in range(MICRO):
            mine |= owner == self.chain[kq, level]
        q, owner, dx, dy, d2 = q[~mine], owner[~mine], dx[~mine], dy[~mine], d2[~mine]
        # the nearest edge of each unit to each point
        pair = q * len(t.geoms) + owner
        order = np.argsort(pair)
        order = order[_first_least(pair[order], d2[order])]
        q, owner, dx, dy = q[order], owner[order], dx[order], dy[order]
        metres = np.hypot(dx * METRES_PER_DEGREE * np.cos(np.radians(y[q])), dy * METRES_PER_DEGREE)
        near = metres <= t.near_m
        q, owner, metres = q[near], owner[near], metres[near]
        level = t.level[owner]
        chosen = np.column_stack([self.chain, self.micro])[k[q], level]
        result.near_boundary[q] = True
        result.add_candidates(t, q, owner, metres, chosen)


def _first_least(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The position of the first least value of each run of equal `group` values (the
    groups come in runs: the pairs of one point together)."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
    least = np.minimum.reduceat(value, starts)
    run = np.zeros(len(group), dtype=np.int64)
    run[starts[1:]] = 1
    run = np.cumsum(run)
    at_least = np.flatnonzero(value == least[run])
    first = np.ones(len(at_least), dtype=bool)
    first[1:] = run[at_least][1:] != run[at_least][:-1]
    return at_least[first]


def _metres(geoms: np.ndarray, points: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Metres from each point to the nearest point of its geometry (the shortest line in
    degrees, with longitude scaled at the point's latitude)."""
    if not len(geoms):
        return np.zeros(0)
    nearest = shapely.shortest_line(geoms, points)
    coords = shapely.get_coordinates(nearest).reshape(-1, 2, 2)
    dx = (coords[:, 0, 0] - coords[:, 1, 0]) * METRES_PER_DEGREE * np.cos(np.radians(lats))
    dy = (coords[:, 0, 1] - coords[:, 1, 1]) * METRES_PER_DEGREE
    return np.hypot(dx, dy)


class _CellIndex:
    """A uniform grid of cells over bounding boxes: which boxes meet the cell of a point."""

    MAX_CELLS = 4_000_000

    def __init__(self, bounds: np.ndarray):
        self.bounds = bounds
        if not len(bounds):
            self.cell, self.nx, self.ny = 1.0, 0, 0
            return
        self.x0, self.y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        width = float(bounds[:, 2].max()) - self.x0
        height = float(bounds[:, 3].max()) - self.y0
        sizes = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        cell = float(np.median(sizes)) / 4 or 1e-4
        while (width / cell + 1) * (height / cell + 1) > self.MAX_CELLS:
            cell *= 2
        self.cell = cell
        self.nx = int(width // cell) + 1
        self.ny = int(height // cell) + 1
        ix0, iy0 = self._cells(bounds[:, 0], bounds[:, 1])
        ix1, iy1 = self._cells(bounds[:, 2], bounds[:, 3])
        w, h = ix1 - ix0 + 1, iy1 - iy0 + 1
        count = w * h
        owner = np.repeat(np.arange(len(bounds)), count)
        k = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
        cells = (ix0[owner] + k // h[owner]) * self.ny + iy0[owner] + k % h[owner]
        order = np.argsort(cells)
        self.items = owner[order]
        self.start = np.zeros(self.nx * self.ny + 1, dtype=np.int64)
        np.cumsum(np.bincount(cells, minlength=self.nx * self.ny), out=self.start[1:])

    def _cells(self, x, y):
        ix = np.clip(np.floor((x - self.x0) / self.cell), 0, self.nx - 1).astype(np.int64)
        iy = np.clip(np.floor((y - self.y0) / self.cell), 0, self.ny - 1).astype(np.int64)
        return ix, iy

    def pairs(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point index, box index) for every box that covers a point (edges included)."""
        if not self.nx or not len(x):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        fx = np.floor((x - self.x0) / self.cell)
        fy = np.floor((y - self.y0) / self.cell)
        inside = np.flatnonzero((fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny))
        cells = fx[inside].astype(np.int64) * self.ny + fy[inside].astype(np.int64)
        count = self.start[cells + 1] - self.start[cells]
        p = np.repeat(inside, count)
        offset = np.arange(len(p)) - np.repeat(np.cumsum(count) - count, count)
        b = self.items[np.repeat(self.start[cells], count) + offset]
        box = self.bounds[b]
        px, py = x[p], y[p]
        hit = (box[:, 0] <= px) & (px <= box[:, 2]) & (box[:, 1] <= py) & (py <= box[:, 3])
        return p[hit], b[hit]


def _strtree(geoms: np.ndarray) -> shapely.STRtree:
    return shapely.STRtree(geoms if len(geoms) else np.array([], dtype=object))


class BulkTags:
    """Geotags of many points as arrays (unit ids, -1 where none) plus the candidates."""

    def __init__(self, n: int):
        self.street = np.full(n, -1, dtype=np.int64)
        self.community = np.full(n, -1, dtype=np.int64)
        self.grid = np.full(n, -1, dtype=np.int64)
        self.microgrid = np.full(n, -1, dtype=np.int64)
        self.version = np.full(n, -1, dtype=np.int64)
        self.near_boundary = np.zeros(n, dtype=bool)
        self.candidates: dict[int, list[dict]] = {}
        # candidates kept as arrays until asked for: (tagger, points, versions, metres, chosen)
        self._pending: list[tuple] = []

    def __len__(self) -> int:
        return len(self.street)

    def add_candidates(self, tagger, points, versions, metres, chosen) -> None:
        """Candidates of `points` (in order): boundary versions (indexes into the tagger's
        arrays), their distance in metres and the version chosen at their level."""
        if len(points):
            self._pending.append((tagger, points, versions, metres, chosen))

    def _pending_in_order(self):
        """(tagger, point, version, metres, chosen) of each pending candidate, a point's
        candidates in the order they are listed: by level, then by code."""
        for tagger, points, versions, metres, chosen in self._pending:
            order = np.lexsort((tagger.code_rank[versions], tagger.level[versions], points))
            for row in zip(
                points[order].tolist(),
                versions[order].tolist(),
                metres[order].tolist(),
                chosen[order].tolist(),
                strict=True,
            ):
                yield tagger, *row

    def _materialise(self) -> None:
        for tagger, point, version, metres, chosen in self._pending_in_order():
            self.candidates.setdefault(point, []).append(tagger.candidate(version, metres, chosen))
        self._pending = []

    def candidate_texts(self) -> dict[int, str]:
        """{point: its candidates as JSON text} for the points that have candidates: the
        text json.dumps(self[point].candidates) gives, made without the dicts."""
        seen = [np.unique(points) for _t, points, *_rest in self._pending]
        everywhere = np.concatenate([np.fromiter(self.candidates, dtype=np.int64), *seen])
        if len(np.unique(everywhere)) < len(everywhere):  # a point's candidates in two places
            self._materialise()
        texts = {point: json.dumps(found) for point, found in self.candidates.items()}
        parts: dict[int, list[str]] = {}
        for tagger, point, version, metres, chosen in self._pending_in_order():
            parts.setdefault(point, []).append(tagger.candidate_json(version, metres, chosen))
        for point, items in parts.items():
            texts[point] = f"[{', '.join(items)}]"
        return texts

    def merge(self, where: np.ndarray, other: "BulkTags") -> None:
        """Put `other` (tags of the points at positions `where`) into these tags."""
        for name in ("street", "community", "grid", "microgrid", "version", "near_boundary"):
            getattr(self, name)[where] = getattr(other, name)
        for i, candidates in other.candidates.items():
            self.candidates[int(where[i])] = candidates
        for tagger, points, versions, metres, chosen in other._pending:
            self._pending.append((tagger, where[points], versions, metres, chosen))

    def __getitem__(self, i: int) -> Geotag:
        if self._pending:
            self._materialise()

        def unit(values):
            return None if values[i] == -1 else int(values[i])

        return Geotag(
            street=unit(self.street),
            community=unit(self.community),
            grid=unit(self.grid),
            microgrid=unit(self.microgrid),
            version=unit(self.version),
            near_boundary=bool(self.near_boundary[i]),
            candidates=self.candidates.get(i, []),
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))
