"""Pick a sqlite3 DB-API module that can load SQLite extensions (no Django imports).

Load order matters. SQLite opens extensions with RTLD_GLOBAL, so mod_spatialite puts the
system's GEOS, PROJ and SQLite libraries into the process's global symbol scope. The shapely,
pyproj and pyogrio wheels bundle their own (newer) copies of those libraries with the same
symbol names; loaded afterwards, they would bind to the system copies and corrupt memory
(seen as a crash at exit). Importing them first binds them to their own copies (Python
loads extension modules with RTLD_NOW), so `dbapi()` does that before any extension loads.
"""

import sqlite3
from types import ModuleType

STDLIB_CAN_LOAD_EXTENSIONS = hasattr(sqlite3.Connection, "enable_load_extension")


class NoExtensionLoading(ImportError):
    pass


def dbapi() -> ModuleType:
    """The standard sqlite3 module when it can load extensions, else sqlean.py's."""
    import pyogrio  # noqa: F401  (see the module docstring: before mod_spatialite)
    import pyproj  # noqa: F401
    import shapely  # noqa: F401

    if STDLIB_CAN_LOAD_EXTENSIONS:
        return sqlite3.dbapi2
    try:
        import sqlean.dbapi2 as sqlean_dbapi
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NoExtensionLoading(
            "this Python's sqlite3 cannot load extensions and the sqlean.py package is "
            "missing: install it with `pip install sqlean.py`"
        ) from exc
    return sqlean_dbapi
