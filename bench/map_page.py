"""The coverage map of a district-scale city in headless Chromium, against a naive page.

    .venv/bin/python bench/map_page.py [--scale 16] [--runs 3] [--workers 2] [--blocking-threads 1]

The city is `load_demo --scale N` in var/bench-<N>.sqlite3 (loaded once, shared with the
other benchmarks; scale 16 has ~15,000 micro-grids). The app runs under granian (the
production server; static files from `collectstatic` sent by WhiteNoise in the app,
compressed as the browser accepts, as in production), and Chromium
(/usr/bin/chromium or WEIGE_CHROMIUM, driven by Playwright) opens, each in a fresh
browser context with an empty cache:

- ours, district zoom: /maps/coverage/ as it opens (fitted to the district, grids drawn);
  in English (Chromium's default language) and, as "ours_district_zh", in Chinese (the
  browser asking for zh-CN, as the app's users' browsers do);
- ours, community zoom: /maps/coverage/?lat=…&lon=…&zoom=15 on one community, then the
  "micro-grids" choice in the layer control (what a planner looks at);
- the floor: a page that loads the app's Leaflet and draws one micro-grid as soon as its
  script runs (the least any Leaflet page does before its first feature; a reference, not a
  target);
- the baseline: a folium page that inlines every current micro-grid with folium.GeoJson
  (the usual way to put a layer on a folium map), served the same way, as the file folium
  writes ("naive") and gzip-compressed ("naive_gzip", as a web server with gzip on would
  send it; bench/map_page_wsgi.py).

Each page is loaded once after the server starts (reported as "cold": the server's
processes load the prepared outlines into memory on their first layer request), then once
per server process untimed (the first load may have reached only one of them), then
`--runs` times. The server runs `--workers` processes of `--blocking-threads` application
threads each (granian's options; default 2 × 1: one process per core, as docs/operations.md
recommends for SpatiaLite).

Measured per page: bytes transferred (the sum of Chromium's encodedDataLength over every
response, from the DevTools protocol), the time from navigation start until the first
feature is drawn (a path element appearing in Leaflet's overlay pane, seen by a
MutationObserver installed before the page's own scripts) and until the page's main layer
is completely drawn (its data-drawn-… attribute; the naive page draws everything in one
go), the median over `--runs` loads. Every page is measured twice: over loopback as it is,
and with Chromium's network emulation at 20 Mbit/s down, 5 up, 40 ms latency (a grid
workstation's 4G or office line). Results are printed as Markdown tables and written as
JSON under bench/results/.
"""

import argparse
import functools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from run import save_results

BASE = Path(__file__).resolve().parents[1]
PY = sys.executable
USER, PASSWORD = "bench-map", "bench-map-password-1"
FIRST_PATH_SCRIPT = """
(() => {
    window.__firstFeature = null;
    window.__allDrawn = null;
    const seen = () => {
        if (window.__firstFeature === null
                && document.querySelector(
                    ".leaflet-overlay-pane path, .leaflet-marker-pane .leaflet-marker-icon")) {
            window.__firstFeature = performance.now();
        }
    };
    new MutationObserver(seen).observe(document, {childList: true, subtree: true});
    // the page's main layer reports itself completely drawn (layers.js)
    new MutationObserver(() => {
        if (window.__allDrawn === null) { window.__allDrawn = performance.now(); }
    }).observe(document, {
        attributes: true, subtree: true,
        attributeFilter: ["data-drawn-grids", "data-drawn-incidents"],
    });
})();
"""
# A grid workstation's line (4G or a small office link): CDP network emulation.
NETWORKS = {
    "loopback": None,
    "20 Mbit/s, 40 ms": {
        "offline": False,
        "latency": 40,
        "downloadThroughput": 20e6 / 8,
        "uploadThroughput": 5e6 / 8,
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def internal(what: str, *args) -> None:
    """Inside Django (DATABASE_URL set): prepare the user, the naive page, a community."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gis.settings")
    django.setup()
    import folium
    from django.contrib.auth import get_user_model

    from grids.models import BoundaryVersion
    from maps.assets import use_local_assets

    if what == "prepare":
        incidents_wanted = int(args[1])
        from incidents.models import Incident

        have = Incident.objects.count()
        if have < incidents_wanted:
            # the seeded points of bench/incident_import.py, imported the production way
            import numpy as np
            from django.db.models import Min
            from incident_import import write_points

            from incidents.importing import ImportOptions, import_incidents
            from incidents.models import Category

            path = BASE / "var" / f"bench-incidents-{incidents_wanted}.csv"
            if not path.exists():
                micro = BoundaryVersion.objects.current().filter(unit__kind="microgrid")
                bounds = np.array([v.geom.extent for v in micro])
                codes = sorted(Category.objects.filter(active=True).values_list("code", flat=True))
                first = BoundaryVersion.objects.aggregate(first=Min("valid_from"))["first"]
                write_points(path, incidents_wanted, bounds, codes, first)
            import_incidents(path, ImportOptions(id_field="id", time_field="time"))
        user, _ = get_user_model().objects.get_or_create(username=USER)
        user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        # the naive baseline: every current micro-grid inlined in one folium map
        versions = BoundaryVersion.objects.current().filter(unit__kind="microgrid")
        features = [
            {
                "type": "Feature",
                "geometry": json.loads(v.geom.geojson),
                "properties": {"code": v.unit.code, "name": v.name},
            }
            for v in versions.select_related("unit")
        ]
        fmap = folium.Map(tiles=None, control_scale=True)
        folium.GeoJson(
            {"type": "FeatureCollection", "features": features},
            name="micro-grids",
            style_function=lambda _f: {"color": "#37474f", "weight": 1, "fillOpacity": 0.4},
            tooltip=folium.GeoJsonTooltip(fields=["name", "code"]),
        ).add_to(fmap)
        use_local_assets(fmap)
        fmap.fit_bounds(fmap.get_bounds())
        target = Path(args[0])
        target.parent.mkdir(parents=True, exist_ok=True)
        fmap.save(str(target))
        # the floor: the least a page can do to draw a feature with Leaflet (the app's copy of
        # Leaflet, one micro-grid drawn as soon as the script has run)
        one = features[0]["geometry"]
        rings = one["coordinates"][0] if one["type"] == "MultiPolygon" else one["coordinates"]
        (target.parent / "leaflet-floor.html").write_text(
            FLOOR_PAGE.replace("LATLNGS", json.dumps([[y, x] for x, y in rings[0]])),
            encoding="utf-8",
        )
        community = (
            BoundaryVersion.objects.current().filter(unit__kind="community").order_by("id").first()
        )
        centre = community.geom.centroid
        print(
            json.dumps(
                {
                    "microgrids": len(features),
                    "community": [centre.y, centre.x],
                    "naive_bytes": target.stat().st_size,
                    "incidents": Incident.objects.count(),
                }
            )
        )


FLOOR_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/vendor/leaflet-1.9.3/leaflet.css">
<script src="/static/vendor/leaflet-1.9.3/leaflet.js"></script>
</head><body style="margin:0">
<div id="map" class="folium-map" style="width:100%;height:100vh"></div>
<script>
var polygon = L.polygon(LATLNGS, {color: "#37474f", weight: 1, fillOpacity: 0.4});
var map = L.map("map", {zoomSnap: 1});
map.fitBounds(polygon.getBounds());
polygon.addTo(map);
</script>
</body></html>
"""


def manage(env, *args, capture=False) -> str:
    done = subprocess.run(
        [PY, *args], env=env, cwd=BASE, stdout=subprocess.PIPE if capture else None, text=True
    )
    done.check_returncode()
    return done.stdout.strip().splitlines()[-1] if capture else ""


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (local)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def measure(
    browser,
    base: str,
    path: str,
    cookies,
    after=None,
    wait_for=None,
    network=None,
    locale: str | None = None,
) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale=locale)
    if cookies:
        context.add_cookies(cookies)
    context.add_init_script(FIRST_PATH_SCRIPT)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    if network:
        cdp.send("Network.emulateNetworkConditions", network)
    transferred = {"bytes": 0, "requests": 0}

    def finished(event):
        transferred["bytes"] += event.get("encodedDataLength", 0)
        transferred["requests"] += 1

    cdp.on("Network.loadingFinished", finished)
    page.goto(base + path, wait_until="load", timeout=180_000)
    page.wait_for_function("window.__firstFeature !== null", timeout=180_000)
    first = page.evaluate("window.__firstFeature")
    if wait_for:  # the main layer drawn completely (the naive page draws all at once)
        page.wait_for_function("window.__allDrawn !== null", timeout=180_000)
    everything = page.evaluate("window.__allDrawn") or first
    ready = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    if after:
        after(page)
    if wait_for:
        page.wait_for_function(wait_for, timeout=180_000)
    page.wait_for_load_state("networkidle", timeout=180_000)
    drawn = page.locator(".leaflet-overlay-pane path").count()
    # when each request to the app started and ended, from navigation start (ms)
    timings = page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter(e => e.name.includes("/maps/layers/"))
            .map(e => [e.name.split("/maps/layers/")[1].split("?")[0],
                       Math.round(e.startTime), Math.round(e.responseEnd)])"""
    )
    context.close()
    return {
        "bytes": transferred["bytes"],
        "requests": transferred["requests"],
        "first_feature_ms": round(first, 1),
        "all_drawn_ms": round(everything, 1),
        "dom_content_loaded_ms": round(ready, 1),
        "paths_drawn": drawn,
        "layer_requests": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--incidents", type=int, default=100_000, help="incidents the city has at least"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="granian worker processes (default 2)"
    )
    parser.add_argument(
        "--blocking-threads",
        type=int,
        default=1,
        help="granian application threads per worker (default 1)",
    )
    parser.add_argument("--internal", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal:
        return internal(*args.internal)
    from playwright.sync_api import sync_playwright

    db = BASE / "var" / f"bench-{args.scale}.sqlite3"
    static_root = BASE / "var" / "static"  # settings.STATIC_ROOT
    env = {
        **os.environ,
        "DATABASE_URL": f"spatialite:///{db}",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "WEIGE_VAR_DIR": str(BASE / "var"),
        "PYTHONPATH": str(BASE),
    }
    manage(env, "manage.py", "migrate", "-v0")
    if not db.exists() or "microgrid" not in manage(
        env,
        "manage.py",
        "shell",
        "-c",
        "from grids.models import Unit;"
        "print('microgrid' if Unit.objects.filter(kind='microgrid').exists() else 'none')",
        capture=True,
    ):
        manage(env, "manage.py", "load_demo", "--scale", str(args.scale))
    manage(env, "manage.py", "collectstatic", "--noinput", "-v0")
    naive_file = static_root / "bench" / "naive-coverage.html"
    facts = json.loads(
        manage(
            env,
            __file__,
            "--internal",
            "prepare",
            str(naive_file),
            str(args.incidents),
            capture=True,
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(Path(PY).with_name("granian")),
            "--interface=wsgi",
            f"--workers={args.workers}",
            f"--blocking-threads={args.blocking_threads}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--log-level=warning",
            "--no-ws",
            "map_page_wsgi:application",
        ],
        env={
            **env,
            "WEIGE_BENCH_NAIVE_PAGE": str(naive_file),
            "PYTHONPATH": f"{BASE}:{BASE / 'bench'}",
        },
        cwd=BASE,
        start_new_session=True,
    )
    results = {
        "microgrids": facts["microgrids"],
        "incidents": facts["incidents"],
        "runs": args.runs,
        "server": f"granian, {args.workers} workers x {args.blocking_threads} threads",
        "pages": {},
    }
    try:
        wait_ready(base + "/login/")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=os.environ.get("WEIGE_CHROMIUM", "/usr/bin/chromium"),
                args=[
                    "--no-sandbox",
                    "--headless",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            login = browser.new_context()
            page = login.new_page()
            page.goto(base + "/login/")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login/" not in url)
            cookies = login.cookies()
            login.close()
            lat, lon = facts["community"]

            def choose_microgrids(page):  # the second choice of the layer control
                page.locator(".leaflet-control-layers-base input[type=radio]").nth(1).check()

            def drawn(*keys: str, more_than_zero: str = "") -> str:
                """A condition: every named layer of the page has drawn (layers.js)."""
                data = "document.querySelector('.folium-map').dataset"
                parts = [f"{data}.drawn{key} !== undefined" for key in keys]
                if more_than_zero:
                    parts.append(f"{data}.drawn{more_than_zero} > 0")
                return " && ".join(parts)

            overlays = ("Problems", "Courtyards", "Workstations")
            # (path, after loading, done when, the browser's language: Chromium's default
            # asks for English; the app's users read Chinese)
            scenarios = {
                "ours_district": ("/maps/coverage/", None, drawn("Grids", *overlays)),
                "ours_district_zh": (
                    "/maps/coverage/",
                    None,
                    drawn("Grids", *overlays),
                    "zh-CN",
                ),
                "ours_community": (
                    f"/maps/coverage/?lat={lat:.6f}&lon={lon:.6f}&zoom=15",
                    choose_microgrids,
                    drawn(*overlays, more_than_zero="Microgrids"),
                ),
                "naive": ("/static/bench/naive-coverage.html", None, None),
                "naive_gzip": ("/bench/naive-coverage-gzip.html", None, None),
                "leaflet_floor": ("/static/bench/leaflet-floor.html", None, None),
                "ours_hazards_district": ("/maps/hazards/", None, drawn("Incidents")),
            }
            for network_name, network in NETWORKS.items():
                for name, (path, after, wait_for, *language) in scenarios.items():
                    locale = language[0] if language else None

                    load = functools.partial(
                        measure, browser, base, path, cookies, after, wait_for, network, locale
                    )

                    # the first load after start: each server process prepares its caches
                    cold = load()
                    # untimed: the first load may have reached one server process only, and
                    # the runs measure processes that are all ready
                    for _ in range(args.workers):
                        load()
                    runs = [load() for _ in range(args.runs)]
                    results["pages"].setdefault(network_name, {})[name] = {
                        "path": path,
                        "cold": cold,
                        "bytes": statistics.median(r["bytes"] for r in runs),
                        "first_feature_ms": statistics.median(r["first_feature_ms"] for r in runs),
                        "all_drawn_ms": statistics.median(r["all_drawn_ms"] for r in runs),
                        "dom_content_loaded_ms": statistics.median(
                            r["dom_content_loaded_ms"] for r in runs
                        ),
                        "paths_drawn": runs[-1]["paths_drawn"],
                        "requests": runs[-1]["requests"],
                        "all": runs,
                    }
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    for pages in results["pages"].values():
        for baseline in ("naive", "naive_gzip"):
            naive = pages[baseline]
            suffix = "" if baseline == "naive" else "_gzip"
            for name in ("ours_district", "ours_district_zh", "ours_community", "leaflet_floor"):
                page = pages[name]
                page[f"bytes_vs_naive{suffix}"] = round(page["bytes"] / naive["bytes"], 4)
                page[f"time_vs_naive{suffix}"] = round(
                    page["first_feature_ms"] / naive["first_feature_ms"], 4
                )
                page[f"all_vs_naive{suffix}"] = round(
                    page["all_drawn_ms"] / naive["all_drawn_ms"], 4
                )
    save_results("map-page", results)

    def ratios(r: dict, key: str) -> str:
        if key not in r:
            return "—"
        return f"{r[key]:.3f}× / {r[key + '_gzip']:.3f}×"

    for network_name, pages in results["pages"].items():
        print(f"\n{network_name} (ratios: vs naive / vs naive_gzip)\n")
        print(
            "| page | bytes transferred | vs naive | DOMContentLoaded | first features drawn "
            "| vs naive | main layer drawn | vs naive | first load after start | paths drawn |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, r in pages.items():
            print(
                f"| {name} | {r['bytes'] / 1e6:.2f} MB | {ratios(r, 'bytes_vs_naive')} "
                f"| {r['dom_content_loaded_ms']:.0f} ms "
                f"| {r['first_feature_ms']:.0f} ms | {ratios(r, 'time_vs_naive')} "
                f"| {r['all_drawn_ms']:.0f} ms | {ratios(r, 'all_vs_naive')} "
                f"| {r['cold']['first_feature_ms']:.0f} ms | {r['paths_drawn']:,} |"
            )
    print(
        f"\nmicro-grids in the city: {results['microgrids']:,}; incidents: {results['incidents']:,}"
    )


if __name__ == "__main__":
    main()
