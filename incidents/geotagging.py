"""Geotagging incidents: which micro-grid, grid, community/village and street hold a point.

Two paths, one answer:
- `geotag_point` for a single intake (the API, the report form): the database lookup of
  grids.lookup, at the incident's report date.
- `BulkGeotagger` for imports of many points: the boundary versions of the chain kinds are
  loaded once into an STRtree and points are tagged in vectorised batches, each at its own
  date (a version counts when valid_from <= date < valid_to).

Both apply the same rules as grids.lookup: a point covered by several units of a level (on a
shared edge) goes to the one under the unit chosen one level up, then the lowest code; units
of the level within `near_m` metres that were not chosen are the "near boundary" candidates.
A point outside every micro-grid is "unassigned" (the levels it does fall in are still set).
"""

import datetime
from dataclasses import dataclass, field

import numpy as np
import shapely
from django.conf import settings

from grids.geometry import to_shapely
from grids.kinds import UnitKind
from grids.lookup import METRES_PER_DEGREE, locate
from grids.models import BoundaryVersion

LEVELS = (
    ("street", (UnitKind.STREET,)),
    ("community", (UnitKind.COMMUNITY, UnitKind.VILLAGE)),
    ("grid", (UnitKind.GRID,)),
    ("microgrid", (UnitKind.MICROGRID,)),
)


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
    tag = Geotag(near_boundary=result["near_boundary"], candidates=result["neighbours"])
    for unit in result["chain"]:
        for level, kinds in LEVELS:
            if unit["kind"] in kinds:
                setattr(tag, level, unit["id"])
                tag.version = unit["boundary_version_id"]
    return tag


class BulkGeotagger:
    """Vectorised geotagging of many points against all boundary versions of the chain."""

    def __init__(self, near_m: float | None = None):
        self.near_m = settings.WEIGE_NEAR_BOUNDARY_M if near_m is None else near_m
        kinds = [k for _level, ks in LEVELS for k in ks]
        rows = list(
            BoundaryVersion.objects.filter(unit__kind__in=kinds).values_list(
                "id",
                "unit_id",
                "unit__kind",
                "unit__code",
                "parent_id",
                "valid_from",
                "valid_to",
                "geom",
            )
        )
        self.version_id = np.array([r[0] for r in rows], dtype=np.int64)
        self.unit_id = np.array([r[1] for r in rows], dtype=np.int64)
        level_of = {k: i for i, (_level, ks) in enumerate(LEVELS) for k in ks}
        self.level = np.array([level_of[r[2]] for r in rows], dtype=np.int8)
        self.code = np.array([r[3] for r in rows], dtype=object)
        self.parent_id = np.array([r[4] or -1 for r in rows], dtype=np.int64)
        self.valid_from = np.array([r[5].toordinal() for r in rows], dtype=np.int64)
        far = datetime.date.max.toordinal()
        self.valid_to = np.array([r[6].toordinal() if r[6] else far for r in rows], dtype=np.int64)
        self.geoms = np.array([to_shapely(r[7]) for r in rows], dtype=object)
        shapely.prepare(self.geoms)  # many point tests per polygon
        self.tree = shapely.STRtree(self.geoms)
        self.micro = np.flatnonzero(self.level == len(LEVELS) - 1)
        self.micro_tree = _strtree(self.geoms[self.micro])
        self.boundaries = np.empty(len(self.geoms), dtype=object)
        self.boundaries[self.micro] = shapely.boundary(self.geoms[self.micro])
        shapely.prepare(self.boundaries[self.micro])
        self._parent_tables: dict[int, np.ndarray] = {}
        # codes rank: ties go to the lowest code
        self.code_rank = np.argsort(np.argsort(self.code.astype(str)))

    def tag(self, lons, lats, dates) -> "BulkTags":
        """Geotags for WGS84 points; `dates` are datetime.date objects (one per point).

        Fast path: a point inside a micro-grid (away from its edge) takes that micro-grid
        and its ancestors by the parents recorded on the versions valid at the date — the
        same answer as the level-by-level rule when children lie inside their parents, which
        the import and coverage checks ensure, and because codes nest (a lower micro-grid
        code means a lower grid code). Points near an edge or outside every micro-grid go
        through the exact level-by-level rule.
        """
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        n = len(lons)
        days = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=n)
        points = shapely.points(lons, lats)
        result = BulkTags(n)
        if not n:
            return result
        p_idx, m_idx = self.micro_tree.query(points, predicate="intersects")
        g_idx = self.micro[m_idx]
        valid = (self.valid_from[g_idx] <= days[p_idx]) & (days[p_idx] < self.valid_to[g_idx])
        p_idx, g_idx = p_idx[valid], g_idx[valid]
        hits_per_point = np.bincount(p_idx, minlength=n)
        single = hits_per_point[p_idx] == 1
        p_one, g_one = p_idx[single], g_idx[single]
        # distance to the micro-grid's edge: near ones take the exact path
        dlat = self.near_m / METRES_PER_DEGREE
        reach = dlat / np.maximum(np.cos(np.radians(lats[p_one])), 1e-6)
        near = shapely.dwithin(self.boundaries[g_one], points[p_one], reach)
        p_fast, g_fast = p_one[~near], g_one[~near]
        result.microgrid[p_fast] = self.unit_id[g_fast]
        result.version[p_fast] = self.version_id[g_fast]
        self._fill_ancestors(result, p_fast, g_fast, days)
        exact = np.ones(n, dtype=bool)
        exact[p_fast] = False
        rest = np.flatnonzero(exact)
        if rest.size:
            result.merge(rest, self._tag_exact(lons[rest], lats[rest], days[rest]))
        return result

    def _fill_ancestors(self, result, p_idx, g_idx, days) -> None:
        """grid, community and street of micro-grid versions g_idx at each point's date."""
        child = self.parent_id[g_idx]  # the grid (unit id) recorded on the micro version
        for level in ("grid", "community", "street"):
            getattr(result, level)[p_idx] = child
            if level == "street":
                break
            child = self._parent_at(child, days[p_idx])

    def _parent_at(self, unit_ids: np.ndarray, days: np.ndarray) -> np.ndarray:
        """The parent (unit id) of each unit on the version valid at the matching day."""
        out = np.full(len(unit_ids), -1, dtype=np.int64)
        for day in np.unique(days):
            table = self._parent_table(int(day))
            sel = days == day
            ids = unit_ids[sel]
            ok = (ids >= 0) & (ids < len(table))
            values = np.full(len(ids), -1, dtype=np.int64)
            values[ok] = table[ids[ok]]
            out[sel] = values
        return out

    def _parent_table(self, day: int) -> np.ndarray:
        table = self._parent_tables.get(day)
        if table is None:
            valid = (self.valid_from <= day) & (day < self.valid_to) & (self.level < 3)
            table = np.full(int(self.unit_id.max()) + 1, -1, dtype=np.int64)
            table[self.unit_id[valid]] = self.parent_id[valid]
            self._parent_tables[day] = table
        return table

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
            nearest = shapely.shortest_line(self.geoms[gi], points[pi])
            coords = shapely.get_coordinates(nearest).reshape(-1, 2, 2)
            dx = (
                (coords[:, 0, 0] - coords[:, 1, 0])
                * METRES_PER_DEGREE
                * np.cos(np.radians(lats[pi]))
            )
            dy = (coords[:, 0, 1] - coords[:, 1, 1]) * METRES_PER_DEGREE
            distance_m[outside] = np.hypot(dx, dy)
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
            for k in at_level[near]:
                point, other = int(p_idx[k]), int(g_idx[k])
                result.near_boundary[point] = True
                result.candidates.setdefault(point, []).append(
                    {
                        "kind": level,
                        "id": int(self.unit_id[other]),
                        "code": str(self.code[other]),
                        "distance_m": round(float(distance_m[k]), 2),
                        "neighbour_of": str(self.code[chosen_hit_of_point[point]]),
                    }
                )
        return result


def _strtree(geoms: np.ndarray) -> shapely.STRtree:
    return shapely.STRtree(geoms if len(geoms) else np.array([], dtype=object))


class BulkTags:
    """Geotags of many points as arrays (unit ids, -1 where none) plus the few candidates."""

    def __init__(self, n: int):
        self.street = np.full(n, -1, dtype=np.int64)
        self.community = np.full(n, -1, dtype=np.int64)
        self.grid = np.full(n, -1, dtype=np.int64)
        self.microgrid = np.full(n, -1, dtype=np.int64)
        self.version = np.full(n, -1, dtype=np.int64)
        self.near_boundary = np.zeros(n, dtype=bool)
        self.candidates: dict[int, list[dict]] = {}

    def __len__(self) -> int:
        return len(self.street)

    def merge(self, where: np.ndarray, other: "BulkTags") -> None:
        """Put `other` (tags of the points at positions `where`) into these tags."""
        for name in ("street", "community", "grid", "microgrid", "version", "near_boundary"):
            getattr(self, name)[where] = getattr(other, name)
        for i, candidates in other.candidates.items():
            self.candidates[int(where[i])] = candidates

    def __getitem__(self, i: int) -> Geotag:
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
