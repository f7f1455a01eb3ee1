"""The app as bench/map_page.py serves it: gis.wsgi plus the naive baseline page sent
gzip-compressed at /bench/naive-coverage-gzip.html (as a web server with gzip on would send
that static file). Everything else goes to the app, /static/ included (WhiteNoise)."""

import gzip
import os
from pathlib import Path

from gis.wsgi import application as app

NAIVE = Path(os.environ["WEIGE_BENCH_NAIVE_PAGE"])
ROUTE = "/bench/naive-coverage-gzip.html"
_body = gzip.compress(NAIVE.read_bytes(), compresslevel=6, mtime=0)


def application(environ, start_response):
    if environ.get("PATH_INFO") != ROUTE:
        return app(environ, start_response)
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(_body))),
        ],
    )
    return [_body]
