"""Run the benchmarks on SpatiaLite and PostGIS and print a Markdown table.

    .venv/bin/python bench/run.py [--scale 16] [--points 5000] [--db spatialite,postgis]

Each database gets its own benchmark database (var/bench-<scale>.sqlite3; a PostGIS database
weige_bench_<scale> on the local server started by .ci/postgis.sh), loaded once with
`load_demo --scale N` and reused by later runs. Results are also written as JSON under
bench/results/.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parents[1]


def save_results(name: str, results) -> Path:
    """Write a benchmark's results as bench/results/<name>-<timestamp>.json."""
    folder = BASE / "bench" / "results"
    folder.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{name}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    return path


def postgis_url(scale: int) -> str:
    url = subprocess.run(
        ["bash", str(BASE / ".ci/postgis.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    name = f"weige_bench_{scale}"
    exists = subprocess.run(
        [
            "su",
            "postgres",
            "-c",
            f"psql -qAt -c \"SELECT 1 FROM pg_database WHERE datname='{name}'\"",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(["su", "postgres", "-c", f"createdb -O weige {name}"], check=True)
        subprocess.run(
            ["su", "postgres", "-c", f"psql -q -d {name} -c 'CREATE EXTENSION postgis'"], check=True
        )
    return url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=16)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--db", default="spatialite,postgis")
    args = parser.parse_args()
    results = []
    for db in args.db.split(","):
        if db == "spatialite":
            url = f"spatialite:///{BASE / 'var' / f'bench-{args.scale}.sqlite3'}"
        else:
            url = postgis_url(args.scale)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BENCH_SCALE": str(args.scale),
            "BENCH_POINTS": str(args.points),
        }
        out = subprocess.run(
            [sys.executable, str(BASE / "bench/lookup_coverage.py")],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    save_results("lookup-coverage", results)
    print(
        "| database | micro-grids | lookup median | lookup p99 | STRtree median | STRtree p99 "
        "| coverage check, end to end | coverage check only | naive pairwise | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        check = r["coverage_s"]["check_only"]
        print(
            f"| {r['database']} | {r['microgrids']:,} | {r['lookup_ms']['median']:.2f} ms "
            f"| {r['lookup_ms']['p99']:.2f} ms | {r['strtree_ms']['median']:.3f} ms "
            f"| {r['strtree_ms']['p99']:.3f} ms | {r['coverage_s']['with_db_load']:.2f} s "
            f"| {check:.2f} s | {r['naive_pairwise_s']:.1f} s "
            f"| {r['naive_pairwise_s'] / check:.0f}× |"
        )
    print()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
