"""Check the native libraries GeoDjango needs before Django tries to load them.

Each missing library is reported in one line that names the package to install, instead of
the long traceback GeoDjango would print. Only ctypes and the standard library are used, so
this runs before settings are loaded.
"""

import ctypes
import ctypes.util
import os

INSTALL_HINTS = {
    "GDAL": "apt-get install gdal-bin (Debian/Ubuntu) or brew install gdal (macOS)",
    "GEOS": "apt-get install libgeos-c1v5 (Debian/Ubuntu) or brew install geos (macOS)",
    "SpatiaLite": (
        "apt-get install libsqlite3-mod-spatialite (Debian/Ubuntu) "
        "or brew install libspatialite (macOS)"
    ),
}


class MissingLibrary(Exception):
    """A native library is missing; the message is one line naming the package."""


def _loadable(path: str | None) -> bool:
    if not path:
        return False
    try:
        ctypes.CDLL(path)
    except OSError:
        return False
    return True


def _find(env_var: str, names: list[str]) -> bool:
    explicit = os.environ.get(env_var)
    if explicit:
        return _loadable(explicit)
    return any(_loadable(ctypes.util.find_library(name)) for name in names)


def missing_gdal() -> str | None:
    if _find("GDAL_LIBRARY_PATH", ["gdal", "GDAL", "gdal3.9.0", "gdal3.8.0", "gdal3.7.0"]):
        return None
    return f"GDAL library not found: install it with `{INSTALL_HINTS['GDAL']}`"


def missing_geos() -> str | None:
    if _find("GEOS_LIBRARY_PATH", ["geos_c", "libgeos_c-1"]):
        return None
    return f"GEOS library not found: install it with `{INSTALL_HINTS['GEOS']}`"


def missing_spatialite() -> str | None:
    explicit = os.environ.get("SPATIALITE_LIBRARY_PATH")
    candidates = [explicit] if explicit else ["mod_spatialite", "mod_spatialite.so"]
    from gis.db.sqlite_driver import dbapi

    database = dbapi()
    conn = database.connect(":memory:")
    try:
        conn.enable_load_extension(True)
        for candidate in candidates:
            try:
                conn.load_extension(candidate)
            except database.OperationalError:
                continue
            return None
    finally:
        conn.close()
    return (
        "SpatiaLite extension (mod_spatialite) not found: "
        f"install it with `{INSTALL_HINTS['SpatiaLite']}`"
    )


def check(engine: str) -> None:
    """Raise MissingLibrary for the first missing native library the engine needs."""
    checks = [missing_gdal, missing_geos]
    if engine.endswith("spatialite"):
        checks.append(missing_spatialite)
    for find_missing in checks:
        problem = find_missing()
        if problem:
            raise MissingLibrary(problem)
