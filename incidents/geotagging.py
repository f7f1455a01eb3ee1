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
        self.tree = shapely.STRtree(self.geoms)
        # codes rank: ties go to the lowest code
        self.code_rank = np.argsort(np.argsort(self.code.astype(str)))

    def tag(self, lons: np.ndarray, lats: np.ndarray, dates: np.ndarray) -> list[Geotag]:
        """Geotags for WGS84 points; `dates` are datetime.date objects (one per point)."""
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        days = np.array([d.toordinal() for d in dates], dtype=np.int64)
        points = shapely.points(lons, lats)
        # candidates within near_m (degrees of latitude are the shortest; convert per point
        # below with the exact local scale)
        near_deg = self.near_m / (METRES_PER_DEGREE * 0.5)
        p_idx, g_idx = self.tree.query(points, predicate="dwithin", distance=near_deg)
        valid = (self.valid_from[g_idx] <= days[p_idx]) & (days[p_idx] < self.valid_to[g_idx])
        p_idx, g_idx = p_idx[valid], g_idx[valid]
        covers = shapely.covers(self.geoms[g_idx], points[p_idx])
        interior = covers & shapely.contains(self.geoms[g_idx], points[p_idx])
        distance_m = np.zeros(len(p_idx))
        outside = np.flatnonzero(~covers)
        if outside.size:
            pi, gi = p_idx[outside], g_idx[outside]
            scale_x = METRES_PER_DEGREE * np.cos(np.radians(lats[pi]))
            # nearest point on the polygon, then metres with the local scale
            nearest = shapely.shortest_line(self.geoms[gi], points[pi])
            coords = shapely.get_coordinates(nearest).reshape(-1, 2, 2)
            dx = (coords[:, 0, 0] - coords[:, 1, 0]) * scale_x
            dy = (coords[:, 0, 1] - coords[:, 1, 1]) * METRES_PER_DEGREE
            distance_m[outside] = np.hypot(dx, dy)
        order = np.lexsort((self.code_rank[g_idx], p_idx))
        tags = [Geotag() for _ in range(len(lons))]
        by_point: dict[int, list[tuple[int, bool, bool, float]]] = {}
        for k in order:
            by_point.setdefault(int(p_idx[k]), []).append(
                (int(g_idx[k]), bool(covers[k]), bool(interior[k]), float(distance_m[k]))
            )
        for point, hits in by_point.items():
            tags[point] = self._resolve(hits)
        return tags

    def _resolve(self, hits: list[tuple[int, bool, bool, float]]) -> Geotag:
        tag = Geotag()
        parent = None
        for level_index, (level, _kinds) in enumerate(LEVELS):
            at_level = [h for h in hits if self.level[h[0]] == level_index]
            containing = [h for h in at_level if h[1]]
            if not containing:
                continue
            chosen = min(
                containing,
                key=lambda h: (
                    parent is not None and self.parent_id[h[0]] != parent,
                    not h[2],
                    self.code_rank[h[0]],
                ),
            )
            setattr(tag, level, int(self.unit_id[chosen[0]]))
            tag.version = int(self.version_id[chosen[0]])
            parent = int(self.unit_id[chosen[0]])
            for other in at_level:
                if other[0] != chosen[0] and other[3] <= self.near_m:
                    tag.near_boundary = True
                    tag.candidates.append(
                        {
                            "kind": level,
                            "id": int(self.unit_id[other[0]]),
                            "code": str(self.code[other[0]]),
                            "distance_m": round(other[3], 2),
                            "neighbour_of": str(self.code[chosen[0]]),
                        }
                    )
        return tag
