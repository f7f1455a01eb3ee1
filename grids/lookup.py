"""Point lookup: which units contain a point at a date (MapIt's point query, with dates).

One SQL query finds the boundary versions valid at the date whose bounding box is within
`near_m` metres of the point, through the database's spatial index (PostGIS `&&` on the GiST
index; SpatiaLite's R*Tree table, which SpatiaLite does not use on its own). The few
candidates are then tested exactly with shapely: containment, and the distance to their
boundary in metres for the near-boundary flag.

Rules for a point on a shared edge or in an overlap: at each level the unit under the unit
chosen one level up wins, then a unit whose interior holds the point beats one whose
boundary does, then the lowest code. The others at that level within `near_m` of the point
are listed as neighbours and the answer is flagged `near_boundary`.
"""

import datetime
import math
from dataclasses import dataclass

import numpy as np
import shapely
from django.conf import settings
from django.db import connection

from grids.kinds import CHAIN_LEVELS, UnitKind
from grids.models import BoundaryVersion, Unit

METRES_PER_DEGREE = 111_320.0


@dataclass
class Candidate:
    version_id: int
    unit_id: int
    kind: str
    code: str
    name: str
    parent_id: int | None
    valid_from: datetime.date
    valid_to: datetime.date | None
    covers: bool
    interior: bool
    distance_m: float  # from the point to the polygon; 0 when the polygon covers it

    def as_dict(self) -> dict:
        return {
            "id": self.unit_id,
            "kind": self.kind,
            "code": self.code,
            "name": self.name,
            "boundary_version_id": self.version_id,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }


def _candidate_sql() -> str:
    versions = BoundaryVersion._meta.db_table
    units = Unit._meta.db_table
    select = (
        f"SELECT v.id, v.unit_id, u.kind, u.code, v.name, v.parent_id, v.valid_from, "
        f"v.valid_to, {{wkb}} FROM {versions} v JOIN {units} u ON u.id = v.unit_id WHERE "
    )
    dated = " AND v.valid_from <= %s AND (v.valid_to IS NULL OR v.valid_to > %s)"
    if connection.vendor == "postgresql":
        return (
            select.format(wkb="ST_AsBinary(v.geom)")
            + "v.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
            + dated
        )
    index = f"idx_{versions}_geom"
    return (
        select.format(wkb="AsBinary(v.geom)")
        + f"v.id IN (SELECT pkid FROM {index} WHERE xmin <= %s AND xmax >= %s "
        "AND ymin <= %s AND ymax >= %s)" + dated
    )


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def candidates(lon: float, lat: float, at: datetime.date, near_m: float) -> list[Candidate]:
    """Versions valid at `at` that contain the point or come within `near_m` metres of it."""
    dlat = near_m / METRES_PER_DEGREE
    dlon = near_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6))
    if connection.vendor == "postgresql":
        params = [lon - dlon, lat - dlat, lon + dlon, lat + dlat, at, at]
    else:
        params = [lon + dlon, lon - dlon, lat + dlat, lat - dlat, at, at]
    rows = _fetch(_candidate_sql(), params)
    if not rows:
        return []
    point = shapely.Point(lon, lat)
    geoms = shapely.from_wkb([bytes(row[8]) for row in rows])
    covers = shapely.covers(geoms, point)
    interior = covers & shapely.contains(geoms, point)
    distances = np.zeros(len(rows))
    outside = np.flatnonzero(~covers)
    if outside.size:
        # Equirectangular metres around the point: exact enough within a few hundred metres.
        scale = np.array([METRES_PER_DEGREE * math.cos(math.radians(lat)), METRES_PER_DEGREE])
        local = shapely.transform(geoms[outside], lambda xy: (xy - (lon, lat)) * scale)
        distances[outside] = shapely.distance(local, shapely.Point(0, 0))
    return [
        Candidate(
            vid,
            uid,
            kind,
            code,
            name,
            parent_id,
            _date(vfrom),
            _date(vto),
            bool(covers[i]),
            bool(interior[i]),
            float(distances[i]),
        )
        for i, (vid, uid, kind, code, name, parent_id, vfrom, vto, _wkb) in enumerate(rows)
    ]


def _date(value) -> datetime.date | None:
    if value is None or isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(value)


def _choose(options: list[Candidate], parent_id: int | None) -> Candidate:
    return min(
        options,
        key=lambda c: (parent_id is not None and c.parent_id != parent_id, not c.interior, c.code),
    )


def locate(
    lon: float, lat: float, at: datetime.date | None = None, near_m: float | None = None
) -> dict:
    """The chain of units containing (lon, lat) in WGS84 at date `at` (default today).

    Returns {"chain": [...], "courtyard": {...}|None, "near_boundary": bool,
    "neighbours": [...]}; a point outside every unit gets an empty chain.
    """
    at = at or datetime.date.today()
    near_m = settings.WEIGE_NEAR_BOUNDARY_M if near_m is None else near_m
    found = candidates(lon, lat, at, near_m)
    chain: list[Candidate] = []
    neighbours: list[dict] = []
    parent_id = None
    levels = [*CHAIN_LEVELS, (UnitKind.COURTYARD,)]
    courtyard = None
    for kinds in levels:
        at_level = [c for c in found if c.kind in kinds]
        containing = [c for c in at_level if c.covers]
        if not containing:
            continue
        chosen = _choose(containing, parent_id)
        for other in at_level:
            if other is not chosen and other.distance_m <= near_m:
                neighbours.append(
                    {
                        **other.as_dict(),
                        "distance_m": round(other.distance_m, 2),
                        "neighbour_of": chosen.code,
                    }
                )
        if kinds == (UnitKind.COURTYARD,):
            courtyard = chosen
        else:
            chain.append(chosen)
            parent_id = chosen.unit_id
    return {
        "chain": [c.as_dict() for c in chain],
        "courtyard": courtyard.as_dict() if courtyard else None,
        "near_boundary": bool(neighbours),
        "neighbours": neighbours,
    }
