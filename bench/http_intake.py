"""Intake over HTTP: sustained POST rate and latency of Open311 service requests against the
app served by a production WSGI server, then a check that every accepted request is stored
exactly once.

    .venv/bin/python bench/http_intake.py [--db spatialite,postgis] [--duration 30]
        [--server gunicorn,granian] [--connections 12] [--workers CPUS] [--threads N]

For each database: a benchmark database with the demo district (var/bench-http.sqlite3; the
PostGIS database weige_bench_http on the local server started by .ci/postgis.sh) is loaded
once and reused. Each server in turn serves gis.wsgi with DEBUG off: gunicorn with sync
workers (the common default), granian (the server docs/operations.md recommends) with
GRANIAN_THREADS application threads per worker. wrk (installed with apt when
missing) POSTs to /open311/v2/requests.json from `--connections` keep-alive connections for
`--duration` seconds, each request with a random point in the district, a random category and
a unique token in its description (bench/http_intake.lua). wrk records the
service_request_id of every accepted request. Afterwards the database is checked: every
accepted id is stored with its token and one "report" timeline entry, no token is stored twice.
Requests still in flight when wrk stops may be stored without wrk having seen the answer; they
are counted separately ("stored, answer not awaited"). Results are printed as a Markdown table
and written as JSON under bench/results/.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from run import save_results

BASE = Path(__file__).resolve().parents[1]
PY = sys.executable
KEY = "bench-http-intake"


def postgis_url() -> str:
    env = {**os.environ, "WEIGE_PG_DB": "weige_bench_http"}
    return subprocess.run(
        ["bash", str(BASE / ".ci/postgis.sh")], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def manage(env, *args, capture=False) -> str:
    done = subprocess.run(
        [PY, *args],
        check=True,
        env=env,
        cwd=BASE,
        capture_output=capture,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1] if capture else ""


def django_env(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEIGE_OPEN311_API_KEYS": KEY,
        "PYTHONPATH": str(BASE),
    }


def internal(what: str, *args) -> None:
    """Run inside Django (a subprocess with DATABASE_URL set): print facts as JSON."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gis.settings")
    django.setup()
    from django.db.models import Count

    from grids.kinds import UnitKind
    from grids.models import Unit
    from incidents.models import Category, Incident, TimelineEntry

    if what == "info":
        district = Unit.objects.filter(kind=UnitKind.DISTRICT).first()
        extent = district.current_version().geom.extent if district else None
        codes = list(Category.objects.active().values_list("code", flat=True)[:40])
        print(json.dumps({"extent": extent, "codes": codes}))
        return
    run, accepted_file = args
    accepted = [int(x) for x in Path(accepted_file).read_text().split()]
    rows = list(
        Incident.objects.filter(description__startswith=f"{run}-").values_list("id", "description")
    )
    ids = {pk for pk, _ in rows}
    tokens = [description for _, description in rows]
    report_entries = dict(
        TimelineEntry.objects.filter(incident_id__in=ids, action="report")
        .values("incident_id")
        .annotate(n=Count("id"))
        .values_list("incident_id", "n")
    )
    print(
        json.dumps(
            {
                "accepted": len(accepted),
                "accepted_distinct": len(set(accepted)),
                "stored": len(rows),
                "lost": len(set(accepted) - ids),
                "tokens_stored_twice": len(tokens) - len(set(tokens)),
                "without_one_report_entry": sum(1 for pk in ids if report_entries.get(pk) != 1),
                "stored_answer_not_awaited": len(ids - set(accepted)),
            }
        )
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer {url} within {timeout} s")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    return shutil.which("wrk") or "wrk"


def run_wrk(wrk, url, env, seconds, connections) -> dict:
    done = subprocess.run(
        [
            wrk,
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(BASE / "bench/http_intake.lua"),
            url,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON "))
    return json.loads(line.removeprefix("BENCH_JSON "))


# Application threads per granian worker: on PostgreSQL a second thread runs Python while
# the first waits for the server; SQLite takes one writer at a time, so one thread is best.
GRANIAN_THREADS = {"postgis": 2, "spatialite": 1}


def threads_for(server: str, db: str, args) -> int:
    if args.threads:
        return args.threads
    return GRANIAN_THREADS[db] if server == "granian" else 2


def server_command(server: str, threads: int, args, port: int) -> list[str]:
    """gunicorn (sync or gthread workers) or granian (Rust HTTP/1.1 server with keep-alive,
    the app in `threads` blocking threads per worker process) serving gis.wsgi."""
    if server == "granian":
        return [
            str(Path(PY).with_name("granian")),
            "--interface=wsgi",
            f"--workers={args.workers}",
            f"--blocking-threads={threads}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--backlog=2048",
            "--log-level=warning",
            "--no-ws",
            "gis.wsgi:application",
        ]
    return [
        PY,
        "-m",
        "gunicorn",
        "gis.wsgi:application",
        f"--workers={args.workers}",
        *(
            [f"--worker-class={args.worker_class}", f"--threads={threads}"]
            if args.worker_class == "gthread"
            else []
        ),
        f"--bind=127.0.0.1:{port}",
        "--backlog=2048",
        "--log-level=warning",
    ]


def bench_database(db: str, server: str, args, wrk: str) -> dict:
    if db == "spatialite":
        url = f"spatialite:///{BASE / 'var' / 'bench-http.sqlite3'}"
    else:
        url = postgis_url()
    env = django_env(url)
    manage(env, "manage.py", "migrate", "-v0")
    info = json.loads(manage(env, __file__, "--internal", "info", capture=True))
    if info["extent"] is None:
        manage(env, "manage.py", "load_demo")
        info = json.loads(manage(env, __file__, "--internal", "info", capture=True))
    x0, y0, x1, y1 = info["extent"]
    # Most points inside the district, some around it (outside every unit: "unassigned").
    dx, dy = (x1 - x0) * 0.05, (y1 - y0) * 0.05
    port = free_port()
    log = open(BASE / "var" / f"bench-http-{db}-{server}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        server_command(server, threads_for(server, db, args), args, port),
        env=env,
        cwd=BASE,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/open311/v2/services.json")
        run = f"http-{uuid.uuid4().hex[:10]}"
        accepted_file = BASE / "var" / f"bench-http-{db}-accepted.txt"
        wrk_env = {
            **os.environ,
            "BENCH_KEY": KEY,
            "BENCH_BBOX": f"{x0 - dx},{y0 - dy},{x1 + dx},{y1 + dy}",
            "BENCH_CODES": ",".join(info["codes"]),
        }
        target = f"http://127.0.0.1:{port}/open311/v2/requests.json"
        # Warm-up: every worker imports, connects and builds its caches.
        run_wrk(
            wrk,
            target,
            {**wrk_env, "BENCH_RUN": f"warm-{run}", "BENCH_OUT": "/dev/null"},
            3,
            args.connections,
        )
        result = run_wrk(
            wrk,
            target,
            {**wrk_env, "BENCH_RUN": run, "BENCH_OUT": str(accepted_file)},
            args.duration,
            args.connections,
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    check = json.loads(
        manage(env, __file__, "--internal", "verify", run, str(accepted_file), capture=True)
    )
    seconds = result["duration_us"] / 1e6
    return {
        "db": db,
        "server": server,
        "workers": args.workers,
        "threads": threads_for(server, db, args)
        if server == "granian" or args.worker_class == "gthread"
        else 1,
        "connections": args.connections,
        "seconds": round(seconds, 1),
        "accepted_per_s": round(result["accepted"] / seconds, 1),
        "p50_ms": result["p50_ms"],
        "p90_ms": result["p90_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
        "wrk": result,
        "check": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="spatialite,postgis")
    parser.add_argument("--duration", type=int, default=30, help="seconds of load")
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="server worker processes"
    )
    parser.add_argument(
        "--server", default="gunicorn,granian", help="comma-separated: gunicorn, granian"
    )
    parser.add_argument(
        "--worker-class", default="sync", choices=["sync", "gthread"], help="gunicorn's"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per worker (default: granian 2 on PostGIS, 1 on SpatiaLite; "
        "gunicorn gthread 2)",
    )
    parser.add_argument("--internal", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal:
        return internal(*args.internal)
    servers = args.server.split(",")
    unknown = set(servers) - {"gunicorn", "granian"}
    if unknown:
        parser.error(f"--server: unknown server {', '.join(sorted(unknown))}")
    wrk = ensure_wrk()
    results = [
        bench_database(db, server, args, wrk) for db in args.db.split(",") for server in servers
    ]
    print()
    print(
        "| database | server | workers × threads | connections | seconds | accepted POST/s "
        "| p50 ms | p99 ms | max ms | non-2xx / errors | lost | stored twice "
        "| stored, answer not awaited |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w, c = r["wrk"], r["check"]
        errors = w["refused"] + sum(w["errors"].values())
        print(
            f"| {r['db']} | {r['server']} | {r['workers']} × {r['threads']} "
            f"| {r['connections']} | {r['seconds']} "
            f"| {r['accepted_per_s']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.0f} | {errors} | {c['lost']} "
            f"| {c['tokens_stored_twice']} | {c['stored_answer_not_awaited']} |"
        )
    save_results("http-intake", results)


if __name__ == "__main__":
    main()
