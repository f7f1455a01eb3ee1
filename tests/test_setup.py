"""The embedded database, the SpatiaLite fallback and the one-line missing-library errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from gis.settings import database_from_url

BASE = Path(__file__).resolve().parents[1]


def manage(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "package"),
    [
        ("GDAL_LIBRARY_PATH", "gdal-bin"),
        ("GEOS_LIBRARY_PATH", "libgeos-c1v5"),
        ("SPATIALITE_LIBRARY_PATH", "libsqlite3-mod-spatialite"),
    ],
)
def test_a_missing_native_library_is_one_clear_line(variable, package, tmp_path):
    env = {variable: "/nonexistent/lib.so", "DATABASE_URL": f"spatialite:///{tmp_path}/x.db"}
    result = manage("check", env_extra=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert package in lines[0] and "Traceback" not in result.stderr


def test_database_url_schemes():
    assert database_from_url("spatialite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"
    assert database_from_url("spatialite:////tmp/x.sqlite3")["ENGINE"] == (
        "gis.db.backends.spatialite"
    )
    pg = database_from_url("postgis://u:p@db.example:5433/weige")
    assert pg["ENGINE"] == "django.contrib.gis.db.backends.postgis"
    assert (pg["HOST"], pg["PORT"], pg["NAME"], pg["USER"]) == ("db.example", 5433, "weige", "u")
    default = database_from_url(None)
    assert default["NAME"].startswith(str(BASE)) and default["NAME"].endswith(".sqlite3")
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="postgis:// or spatialite:///"):
        database_from_url("mysql://u:p@h/db")


@pytest.mark.django_db
def test_spatialite_works_even_when_python_sqlite3_cannot_load_extensions():
    if connection.vendor != "sqlite":
        pytest.skip("SpatiaLite only")
    import sqlite3

    from gis.db.backends.spatialite import base

    with connection.cursor() as cursor:
        cursor.execute("SELECT spatialite_version()")
        assert cursor.fetchone()[0]
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        assert base.Database.__name__.startswith("sqlean")
    else:
        assert base.Database.__name__.startswith("sqlite3")


def test_migrate_on_a_fresh_file_database_keeps_spatial_indexes(tmp_path):
    db = tmp_path / "fresh.sqlite3"
    result = manage("migrate", "-v0", env_extra={"DATABASE_URL": f"spatialite:///{db}"})
    assert result.returncode == 0, result.stderr
    import sqlean

    conn = sqlean.connect(str(db))
    rows = conn.execute(
        "SELECT f_table_name, spatial_index_enabled FROM geometry_columns"
    ).fetchall()
    assert dict(rows)["grids_boundaryversion"] == 1
