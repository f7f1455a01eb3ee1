"""Benchmark: importing incident points into a `load_demo --scale N` city.

    .venv/bin/python bench/incident_import.py --db both --points 1000000

Uses the benchmark databases of bench/run.py (var/bench-<scale>.sqlite3; the PostGIS database
weige_bench_<scale>), loading the city once. Writes N seeded points (default 1,000,000) in and
around the district with categories and report times to var/bench-incidents-<N>.csv (reused),
then, in one process per database and one run:

- import: the real `import_incidents` path (incidents.importing) from the CSV, end to end;
- plain insert: the same CSV rows read and inserted into the incident table in the same
  chunks, without checks, geotagging, deadlines or timeline entries (executemany on SQLite,
  COPY on PostGIS) — the floor any import is measured against;
- ORM bulk insert: the same rows as model instances through QuerySet.bulk_create, one
  transaction per chunk — how Django code usually inserts many rows;
- geotagging (measured first, while the database server is idle): BulkGeotagger (the
  import's geotagger) on the same points in the import's chunks, against
  geopandas.sjoin(points, micro-grid polygons, predicate="within"), each twice:
  "including build" is the first pass (ours: loading the boundary versions and building
  each period's indexes on first use; sjoin: building the polygons' spatial index),
  "after build" the second pass over the same points with the indexes built. The
  sjoin times include making the point GeoDataFrame. The one-off build time of ours
  (load + first pass − second pass) is reported on its own. A third ratio also counts on
  the sjoin side reading its polygons from the database (one query, WKB into shapely), as
  ours counts loading the boundary versions;
- peak memory: the process's maximum resident size after each step (ru_maxrss); the table
  gives it at the end of the import (the ORM bulk insert, which holds a chunk's model
  instances, comes after).

The benchmark rows (external ids "b18-…") are deleted before and after. Prints a Markdown
table and the JSON; results are also written under bench/results/.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from run import postgis_url, save_results  # the benchmark databases of bench/run.py

BASE = Path(__file__).resolve().parents[1]
PREFIX = "b18-"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_points(path: Path, n: int, micro_bounds, codes, first_day: datetime.date) -> None:
    """9 in 10 points in the box of a random micro-grid (incidents happen where people
    live), the rest anywhere in the district's box grown by 5%."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20261126)
    xmin, ymin = micro_bounds[:, 0].min(), micro_bounds[:, 1].min()
    xmax, ymax = micro_bounds[:, 2].max(), micro_bounds[:, 3].max()
    dx, dy = (xmax - xmin) * 0.05, (ymax - ymin) * 0.05
    lons = rng.uniform(xmin - dx, xmax + dx, n)
    lats = rng.uniform(ymin - dy, ymax + dy, n)
    near = rng.random(n) < 0.9
    box = micro_bounds[rng.integers(0, len(micro_bounds), int(near.sum()))]
    lons[near] = rng.uniform(box[:, 0], box[:, 2])
    lats[near] = rng.uniform(box[:, 1], box[:, 3])
    start = datetime.datetime.combine(max(first_day, datetime.date(2025, 1, 1)), datetime.time())
    seconds = rng.integers(0, 365 * 86400, n)
    times = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
    weights = rng.pareto(1.2, len(codes)) + 0.1
    frame = pd.DataFrame(
        {
            "id": [f"{PREFIX}{i}" for i in range(n)],
            "lon": np.round(lons, 7),
            "lat": np.round(lats, 7),
            "category": rng.choice(codes, n, p=weights / weights.sum()),
            "time": times.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
        }
    )
    frame.to_csv(path, index=False)


def delete_bench_rows() -> None:
    from django.db import connection, transaction

    from incidents.models import Incident, TimelineEntry

    incidents, timeline = Incident._meta.db_table, TimelineEntry._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {timeline} WHERE incident_id IN "
            f"(SELECT id FROM {incidents} WHERE external_id LIKE %s)",
            [PREFIX + "%"],
        )
        cursor.execute(f"DELETE FROM {incidents} WHERE external_id LIKE %s", [PREFIX + "%"])
    if connection.vendor == "postgresql":  # each measurement starts from tables without bloat
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {incidents}, {timeline}")


def plain_insert(path: Path, chunk: int) -> int:
    """Read the CSV and insert its rows as incidents, nothing else (see the docstring)."""
    from django.db import connection
    from django.utils import timezone

    from incidents.models import Category, Incident
    from incidents.workflow import State

    category_id = dict(Category.objects.values_list("code", "id"))
    now = timezone.now()
    table = Incident._meta.db_table
    fixed = {
        "input_crs": "wgs84",
        "description": "",
        "source": "import",
        "reporter_name": "",
        "reporter_phone": "",
        "urgent": False,
        "state": State.REPORTED,
        "unassigned": False,
        "near_boundary": False,
        "boundary_candidates": "[]",
        "deadline_note": "",
        "lock_version": 0,
    }
    names = [*fixed, "location", "input_lon", "input_lat", "category_id", "reported_at"]
    names += ["external_id", "created_at"]
    postgres = connection.vendor == "postgresql"
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(now)

    def rows(batch):
        for rid, lon, lat, code, at in batch:
            x, y = float(lon), float(lat)
            reported = datetime.datetime.fromisoformat(at)
            point = f"SRID=4326;POINT({x!r} {y!r})" if postgres else f"POINT({x!r} {y!r})"
            yield (
                *fixed.values(),
                point,
                x,
                y,
                category_id[code],
                reported if postgres else adapt(reported),
                rid,
                now if postgres else created,
            )

    return sum(_insert(table, names, rows(batch), postgres) for batch in _batches(path, chunk))


def _batches(path: Path, chunk: int):
    """The CSV's rows (id, lon, lat, category, time) in lists of `chunk`."""
    import csv

    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        batch = []
        for row in reader:
            batch.append(row)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch


def orm_bulk_insert(path: Path, chunk: int) -> int:
    """The same rows as plain_insert, the way Django code inserts many rows: model instances
    and QuerySet.bulk_create, one transaction per chunk (batches as Django chooses them)."""
    from django.contrib.gis.geos import Point
    from django.db import transaction
    from django.utils import timezone

    from incidents.models import Category, Incident
    from incidents.workflow import State

    category_id = dict(Category.objects.values_list("code", "id"))
    now = timezone.now()

    def insert(batch) -> int:
        objs = [
            Incident(
                location=Point(float(lon), float(lat), srid=4326),
                input_crs="wgs84",
                input_lon=float(lon),
                input_lat=float(lat),
                category_id=category_id[code],
                source="import",
                reported_at=datetime.datetime.fromisoformat(at),
                external_id=rid,
                state=State.REPORTED,
                created_at=now,
            )
            for rid, lon, lat, code, at in batch
        ]
        with transaction.atomic():
            Incident.objects.bulk_create(objs)
        return len(objs)

    return sum(insert(batch) for batch in _batches(path, chunk))


def _insert(table: str, names: list[str], rows, postgres: bool) -> int:
    from django.db import connection, transaction

    columns = ", ".join(names)
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:
            raw = cursor.cursor  # psycopg 3
            n = 0
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
            return n
        values = ", ".join("GeomFromText(%s, 4326)" if c == "location" else "%s" for c in names)
        batch = list(rows)
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({values})", batch)
        return len(batch)


def geotag_vs_sjoin(path: Path, n_points: int, chunk: int) -> dict:
    """(a) geotagging: the import's geotagger against geopandas.sjoin on the same points."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import shapely
    from django.contrib.gis.db.models.functions import AsWKB

    from grids.models import BoundaryVersion
    from incidents.geotagging import BulkGeotagger

    frame = pd.read_csv(path, usecols=["lon", "lat", "time"])
    lons, lats = frame["lon"].to_numpy(), frame["lat"].to_numpy()
    stamps = pd.to_datetime(frame["time"], utc=True).dt.tz_convert("Asia/Shanghai")
    days = (stamps.dt.tz_localize(None).to_numpy().astype("datetime64[D]")).astype(np.int64)
    days = days + datetime.date(1970, 1, 1).toordinal()
    del frame, stamps
    start = time.perf_counter()
    tagger = BulkGeotagger()
    load_s = time.perf_counter() - start

    def tag_all() -> tuple[float, int]:
        start, assigned = time.perf_counter(), 0
        for i in range(0, n_points, chunk):
            tags = tagger.tag(lons[i : i + chunk], lats[i : i + chunk], days[i : i + chunk])
            assigned += int((tags.microgrid != -1).sum())
        return time.perf_counter() - start, assigned

    first_s, assigned = tag_all()  # builds each period's indexes on first use
    after_s, _assigned = tag_all()
    # sjoin's polygons read as ours are: one query, WKB made into shapely geometries
    start = time.perf_counter()
    micro = BoundaryVersion.objects.valid_at(datetime.date.today()).filter(unit__kind="microgrid")
    rows = list(micro.annotate(wkb=AsWKB("geom")).values_list("unit_id", "wkb"))
    polygons = gpd.GeoDataFrame(
        {"unit_id": [u for u, _w in rows]},
        geometry=shapely.from_wkb([bytes(w) for _u, w in rows]),
        crs=4326,
    )
    read_s = time.perf_counter() - start

    def sjoin() -> tuple[float, int]:
        start = time.perf_counter()
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lons, lats), crs=4326)
        joined = gpd.sjoin(points, polygons, predicate="within")
        return time.perf_counter() - start, len(joined)

    sjoin_first_s, matches = sjoin()  # builds the polygons' spatial index
    sjoin_after_s, _matches = sjoin()
    build_s = load_s + first_s
    return {
        "load_s": load_s,
        "first_pass_s": first_s,
        "index_build_s": load_s + first_s - after_s,
        "seconds": after_s,
        "points_per_s": n_points / after_s,
        "points_per_s_incl_build": n_points / build_s,
        "in_a_microgrid": assigned,
        "sjoin_seconds_incl_build": sjoin_first_s,
        "sjoin_seconds": sjoin_after_s,
        "sjoin_points_per_s_incl_build": n_points / sjoin_first_s,
        "sjoin_points_per_s": n_points / sjoin_after_s,
        "sjoin_matches": matches,
        "ratio_incl_build": sjoin_first_s / build_s,
        "sjoin_read_s": read_s,
        # both from the database: reading the polygons, building, one pass
        "ratio_from_db": (read_s + sjoin_first_s) / build_s,
        "ratio": sjoin_after_s / after_s,
    }


def worker(n_points: int, scale: int, chunk: int, geotag_only: bool = False) -> dict:
    sys.path.insert(0, str(BASE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gis.settings")
    import django

    django.setup()
    import shapely
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Min

    from grids.models import BoundaryVersion, Unit
    from incidents.importing import ImportOptions, import_incidents
    from incidents.models import Category

    call_command("migrate", verbosity=0)
    if not Unit.objects.filter(kind="microgrid").exists():
        call_command("load_demo", "--scale", str(scale), "--quiet")
    today = datetime.date.today()
    micro = BoundaryVersion.objects.valid_at(today).filter(unit__kind="microgrid")
    micro_rows = list(micro.values_list("unit_id", "geom"))
    micro_geoms = shapely.from_wkb([bytes(g.wkb) for _u, g in micro_rows])
    path = BASE / "var" / f"bench-incidents-{n_points}.csv"
    if not path.exists():
        codes = sorted(Category.objects.filter(active=True).values_list("code", flat=True))
        first = BoundaryVersion.objects.aggregate(first=Min("valid_from"))["first"]
        write_points(path, n_points, shapely.bounds(micro_geoms), codes, first)
    out = {
        "database": connection.vendor,
        "date": today.isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "points": n_points,
        "microgrids": len(micro_rows),
        "chunk": chunk,
        "maxrss_start_mb": maxrss_mb(),
    }

    # (a) geotagging first, while the database server is idle: after the import it may
    # still be writing out the rows, which would slow whichever side runs then
    out["geotag"] = geotag_vs_sjoin(path, n_points, chunk)
    out["maxrss_after_geotag_mb"] = maxrss_mb()
    if geotag_only:
        return out
    gc.collect()

    # (b) end to end: the import, then the plain insert of the same rows
    delete_bench_rows()
    options = ImportOptions(id_field="id", time_field="time", chunk_size=chunk)
    result = import_incidents(path, options)
    summary = result.summary()
    out["import"] = {
        "seconds": result.seconds,
        "rows_per_s": n_points / result.seconds,
        "imported": summary["imported"],
        "rejected": summary["rejected"],
        "unassigned": summary["unassigned"],
        "near_boundary": summary["near_boundary"],
    }
    out["maxrss_after_import_mb"] = maxrss_mb()
    delete_bench_rows()
    # the baselines, each from the same empty state
    for name, ratio, insert in (
        ("plain_insert", "import_vs_plain", plain_insert),
        ("orm_bulk_insert", "import_vs_orm", orm_bulk_insert),
    ):
        start = time.perf_counter()
        inserted = insert(path, chunk)
        seconds = time.perf_counter() - start
        out[name] = {"seconds": seconds, "rows_per_s": inserted / seconds, "rows": inserted}
        delete_bench_rows()
        out[ratio] = out["import"]["rows_per_s"] / out[name]["rows_per_s"]

    out["maxrss_end_mb"] = maxrss_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["spatialite", "postgis", "both"], default="both")
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument(
        "--geotag-only", action="store_true", help="compare the geotaggers, skip the inserts"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.points, args.scale, args.chunk_size, args.geotag_only)))
        return
    dbs = ["spatialite", "postgis"] if args.db == "both" else [args.db]
    results = []
    for db in dbs:
        if db == "spatialite":
            url = f"spatialite:///{BASE / 'var' / f'bench-{args.scale}.sqlite3'}"
        else:
            url = postgis_url(args.scale)
        command = [sys.executable, __file__, "--worker", "--points", str(args.points)]
        command += ["--scale", str(args.scale), "--chunk-size", str(args.chunk_size)]
        command += ["--geotag-only"] if args.geotag_only else []
        out = subprocess.run(
            command,
            env={**os.environ, "DATABASE_URL": url},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    save_results("incident-geotag" if args.geotag_only else "incident-import", results)
    if args.geotag_only:
        print(
            "| database | points | geotag incl. build | geotag after build | sjoin incl. build "
            "| sjoin after build | polygons read for sjoin "
            "| geotag ÷ sjoin (incl. / after / from the database) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            g = r["geotag"]
            print(
                f"| {r['database']} | {r['points']:,} "
                f"| {g['points_per_s_incl_build']:,.0f}/s ({g['load_s']:.2f} s load, "
                f"{g['index_build_s']:.2f} s load and build) | {g['points_per_s']:,.0f}/s "
                f"| {g['sjoin_points_per_s_incl_build']:,.0f}/s | {g['sjoin_points_per_s']:,.0f}/s "
                f"| {g['sjoin_read_s']:.2f} s "
                f"| {g['ratio_incl_build']:.2f}× / {g['ratio']:.2f}× / {g['ratio_from_db']:.2f}× |"
            )
        print()
        print(json.dumps(results, indent=2))
        return
    print(
        "| database | points | geotag incl. build | geotag after build | sjoin incl. build "
        "| sjoin after build | geotag ÷ sjoin (incl. / after / from the database) "
        "| import, end to end "
        "| plain insert | import ÷ plain | ORM bulk_create | import ÷ bulk_create "
        "| peak memory to the end of the import |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        g, i, p, b = r["geotag"], r["import"], r["plain_insert"], r["orm_bulk_insert"]
        print(
            f"| {r['database']} | {r['points']:,} "
            f"| {g['points_per_s_incl_build']:,.0f}/s ({g['index_build_s']:.1f} s build) "
            f"| {g['points_per_s']:,.0f}/s "
            f"| {g['sjoin_points_per_s_incl_build']:,.0f}/s | {g['sjoin_points_per_s']:,.0f}/s "
            f"| {g['ratio_incl_build']:.2f}× / {g['ratio']:.2f}× / {g['ratio_from_db']:.2f}× "
            f"| {i['rows_per_s']:,.0f}/s ({i['seconds']:.0f} s) "
            f"| {p['rows_per_s']:,.0f}/s ({p['seconds']:.0f} s) | {r['import_vs_plain']:.2f}× "
            f"| {b['rows_per_s']:,.0f}/s ({b['seconds']:.0f} s) | {r['import_vs_orm']:.2f}× "
            f"| {r['maxrss_after_import_mb']:,.0f} MB |"
        )
    print()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
