"""Benchmark: point lookup and coverage check on a `load_demo --scale N` city.

Run through bench/run.py (one process per database). In one process and one run:
- the lookup the API uses (grids.lookup.locate), per point, on random points in the city;
- the baseline: the same question answered by shapely on an STRtree of the same polygons;
- the coverage check of all micro-grids (gis.coverage via grids.coverage_check), against a
  naive pairwise overlap check (gis.coverage.check_overlaps_pairwise) of the same polygons.
Prints one JSON object.
"""

import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gis.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from gis.coverage import check_coverage, check_overlaps_pairwise  # noqa: E402
from grids.coverage_check import check_unit_coverage  # noqa: E402
from grids.geometry import to_shapely  # noqa: E402
from grids.lookup import locate  # noqa: E402
from grids.models import BoundaryVersion, Unit  # noqa: E402


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    scale = int(os.environ.get("BENCH_SCALE", "16"))
    n_points = int(os.environ.get("BENCH_POINTS", "5000"))
    call_command("migrate", verbosity=0)
    if not Unit.objects.filter(kind="microgrid").exists():
        _, load_s = timed(call_command, "load_demo", "--scale", str(scale), "--quiet")
    else:
        load_s = None
    today = datetime.date.today()
    versions = list(BoundaryVersion.objects.valid_at(today).values_list("id", "unit__kind", "geom"))
    geoms = np.array([to_shapely(g) for _i, _k, g in versions], dtype=object)
    kinds = [k for _i, k, _g in versions]
    micro_count = kinds.count("microgrid")
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    rng = random.Random(20261126)
    points = [(rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)) for _ in range(n_points)]

    # warm-up (connection, caches), not timed
    for lon, lat in points[:50]:
        locate(lon, lat, today)
    lookup_ms = []
    chains = 0
    for lon, lat in points:
        start = time.perf_counter()
        result = locate(lon, lat, today)
        lookup_ms.append((time.perf_counter() - start) * 1000)
        chains += bool(result["chain"])

    tree, build_s = timed(shapely.STRtree, geoms)
    strtree_ms = []
    for lon, lat in points:
        start = time.perf_counter()
        point = shapely.Point(lon, lat)
        hits = tree.query(point, predicate="covered_by")
        _ = [kinds[i] for i in hits]
        strtree_ms.append((time.perf_counter() - start) * 1000)

    report, coverage_s = timed(check_unit_coverage, "microgrid")
    micro = [
        (code, to_shapely(g), parent)
        for code, g, parent in BoundaryVersion.objects.valid_at(today)
        .filter(unit__kind="microgrid")
        .values_list("unit__code", "geom", "parent__code")
    ]
    micro_geoms = np.array([g for _c, g, _p in micro], dtype=object)
    grid_geoms = {
        c: to_shapely(g)
        for c, g in BoundaryVersion.objects.valid_at(today)
        .filter(unit__kind="grid")
        .values_list("unit__code", "geom")
    }
    _, coverage_pure_s = timed(check_coverage, micro, grid_geoms)

    # the naive baseline: every pair of micro-grids tested, no index
    _, naive_s = timed(check_overlaps_pairwise, micro_geoms)

    print(
        json.dumps(
            {
                "database": connection.vendor,
                "date": today.isoformat(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                f"{platform.python_version()}",
                "scale": scale,
                "units": len(versions),
                "microgrids": micro_count,
                "load_demo_s": load_s,
                "points": n_points,
                "points_with_chain": chains,
                "lookup_ms": {
                    "median": statistics.median(lookup_ms),
                    "p99": percentile(lookup_ms, 99),
                    "mean": statistics.fmean(lookup_ms),
                },
                "strtree_ms": {
                    "median": statistics.median(strtree_ms),
                    "p99": percentile(strtree_ms, 99),
                    "build_s": build_s,
                },
                "coverage_s": {
                    "with_db_load": coverage_s,
                    "check_only": coverage_pure_s,
                    "problems": len(report.problems),
                },
                "naive_pairwise_s": naive_s,
            }
        )
    )


if __name__ == "__main__":
    main()
