"""Settings for weige. Everything can be set from the environment; the defaults run the
embedded SpatiaLite database inside the project folder with no server."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from gis import preflight

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("WEIGE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY", "weige-development-key-not-for-production")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "rest_framework_gis",
    "drf_spectacular",
    "grids",
    "incidents",
    "maps",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /static/ from STATIC_ROOT, gzip- or Brotli-compressed as the browser accepts
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # pages and API answers gzip-compressed when the browser accepts it (static files are
    # answered above, compressed ahead of time; photos go as they are); with Django's
    # BREACH mitigation (random padding) and per-request masked CSRF tokens
    "gis.middleware.CompressionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gis.urls"
WSGI_APPLICATION = "gis.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "incidents.context_processors.navigation",
            ],
        },
    },
]

SPATIALITE_ENGINE = "gis.db.backends.spatialite"
# Seconds a worker keeps its database connection between requests (opening one costs a
# SpatiaLite extension load or a PostgreSQL login); 0 closes it after every request.
CONN_MAX_AGE = int(os.environ.get("CONN_MAX_AGE", "60"))


def database_from_url(url: str | None) -> dict:
    """DATABASES['default'] from DATABASE_URL: `postgis://…` or `spatialite:///path`.

    Without a URL, the embedded SpatiaLite file var/weige.sqlite3 is used.
    """
    if not url:
        return {
            "ENGINE": SPATIALITE_ENGINE,
            "NAME": str(VAR_DIR / "weige.sqlite3"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
        }
    scheme = url.split(":", 1)[0]
    if scheme not in ("postgis", "spatialite"):
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgis:// or spatialite:///, not {scheme}://"
        )
    config = dj_database_url.parse(url, conn_max_age=CONN_MAX_AGE)
    if scheme == "spatialite":
        config["ENGINE"] = SPATIALITE_ENGINE
    return config


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}
if DATABASES["default"]["ENGINE"] == SPATIALITE_ENGINE:
    # SQLite waits for a lock instead of failing at once when two processes write, and a
    # transaction takes the write lock when it starts (BEGIN IMMEDIATE): two transactions
    # that read and then write would otherwise deadlock, and one fail with "database is
    # locked" instead of waiting its turn.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("timeout", 30)
    options.setdefault("transaction_mode", "IMMEDIATE")
    # Write-ahead log: readers never wait for the writer, and a commit is an append to the
    # log rather than a rewrite of the database pages (synchronous=NORMAL is the setting
    # SQLite recommends with WAL: durable across application crashes; a power cut may lose
    # the last commits but never corrupts the file).
    options.setdefault("init_command", "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL")
    # The test database is a file so that subprocesses (commands under test) can share it.
    # One per process, so that two test runs on one machine do not share a file.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_weige_{os.getpid()}.sqlite3")}
else:
    DATABASES["default"].setdefault("TEST", {})

try:
    preflight.check(DATABASES["default"]["ENGINE"])
except preflight.MissingLibrary as exc:
    raise ImproperlyConfigured(str(exc)) from None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes a .gz and a .br copy of each text file, which WhiteNoise sends
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "weige API",
    "DESCRIPTION": "Territory lookup and incidents of the weige grid-governance system.",
    "VERSION": "0.1.0",
}

# --- Territory rules (DOMAIN.md §2) -------------------------------------------------------
# Digits appended to a community/village code to number its grids (Beijing DB11/T 2157: 3;
# CJ/T 213: 2), and to a grid code to number its micro-grids.
WEIGE_GRID_SEQUENCE_WIDTH = int(os.environ.get("WEIGE_GRID_SEQUENCE_WIDTH", "3"))
WEIGE_MICROGRID_SEQUENCE_WIDTH = int(os.environ.get("WEIGE_MICROGRID_SEQUENCE_WIDTH", "2"))
# Points closer than this to another unit's boundary are flagged "near boundary" (metres).
WEIGE_NEAR_BOUNDARY_M = float(os.environ.get("WEIGE_NEAR_BOUNDARY_M", "5"))
# Overlap/gap pieces smaller than this are treated as numerical noise (square metres), and
# pieces thinner than the sliver width are reported as slivers (metres).
WEIGE_COVERAGE_MIN_AREA_M2 = float(os.environ.get("WEIGE_COVERAGE_MIN_AREA_M2", "1"))
WEIGE_SLIVER_WIDTH_M = float(os.environ.get("WEIGE_SLIVER_WIDTH_M", "2"))


# Django's GDAL (Debian 12 ships 3.6) is used only for EPSG:4326 geometries the app builds
# itself; files from users are read through pyogrio's own GDAL. The "cannot block file and
# network access in spatial references" warning therefore does not apply.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

# --- Working time (DOMAIN.md §4) ----------------------------------------------------------
# Working periods of every working day, "HH:MM-HH:MM" separated by commas. Deadlines count
# only these periods on official working days (chinese-calendar holidays and make-up days).
WEIGE_WORKING_HOURS = os.environ.get("WEIGE_WORKING_HOURS", "08:30-12:00,13:30-17:30")
# Open incidents of the same category reported within this many days (and within the
# category's radius) are suggested as duplicates of a new report.
WEIGE_DUPLICATE_WINDOW_DAYS = int(os.environ.get("WEIGE_DUPLICATE_WINDOW_DAYS", "7"))
# Photos attached to incidents: JPEG, PNG or WebP, at most this many bytes each.
WEIGE_PHOTO_MAX_BYTES = int(os.environ.get("WEIGE_PHOTO_MAX_BYTES", str(10 * 1024 * 1024)))

# --- Indicators (DOMAIN.md §5) -------------------------------------------------------------
# Colour bands of the KPI page: a rate is "good" from `good`, "fair" from `fair`, else "poor";
# for rates where lower is better (rework, extension), "good" up to `good`, "fair" up to `fair`.
WEIGE_KPI_BANDS = {
    "valid_report_rate": {"good": 0.9, "fair": 0.7},
    "acceptance_rate": {"good": 0.9, "fair": 0.7},
    "on_time_check_rate": {"good": 0.9, "fair": 0.7},
    "closure_rate": {"good": 0.9, "fair": 0.7},
    "on_time_closure_rate": {"good": 0.9, "fair": 0.7},
    "rework_rate": {"good": 0.02, "fair": 0.05, "lower_is_better": True},
    "extension_rate": {"good": 0.05, "fair": 0.15, "lower_is_better": True},
}

# --- Basemaps (maps/basemaps.py, DOMAIN.md §6) ---------------------------------------------
# Tiles under the maps: "none" (a plain background; works without internet access),
# "tianditu_vec" / "tianditu_img" (天地图 map or imagery, needs WEIGE_TIANDITU_KEY, a browser
# key), "osm" (OpenStreetMap) or "amap" (高德, GCJ-02 tiles: overlays are drawn shifted).
WEIGE_BASEMAP = os.environ.get("WEIGE_BASEMAP", "none")
WEIGE_TIANDITU_KEY = os.environ.get("WEIGE_TIANDITU_KEY", "")

# --- Open311 GeoReport v2 ---------------------------------------------------------------
# API keys allowed to POST service requests, comma-separated (e.g. a 12345 hotline bridge).
WEIGE_OPEN311_API_KEYS = [
    key for key in os.environ.get("WEIGE_OPEN311_API_KEYS", "").split(",") if key.strip()
]
# Open311 discovery: who answers for the endpoint, and where a client gets an api_key
WEIGE_OPEN311_CONTACT = os.environ.get("WEIGE_OPEN311_CONTACT", "")
WEIGE_OPEN311_KEY_SERVICE = os.environ.get("WEIGE_OPEN311_KEY_SERVICE", "")

# --- Maps ------------------------------------------------------------------------------------
# A grid is "thin" on the coverage map with fewer grid members (full- and part-time) per 100
# households than this (0.3: one member per ~330 households, DOMAIN.md §1).
WEIGE_MEMBERS_PER_100_HOUSEHOLDS = float(os.environ.get("WEIGE_MEMBERS_PER_100_HOUSEHOLDS", "0.3"))
# Prepared unit outlines and coverage-check results (maps.geometry_cache), shared by the
# server's workers; keys carry the boundary state, so edits never show stale outlines.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "maps": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache" / "maps"),
        "OPTIONS": {"MAX_ENTRIES": 200},
    },
}
