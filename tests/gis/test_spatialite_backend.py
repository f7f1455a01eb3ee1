import pytest
from django.db import connection

from gis.db.backends.spatialite.creation import DatabaseCreation


def test_destroying_a_test_database_removes_the_files_beside_it(tmp_path):
    database = tmp_path / "test_weige.sqlite3"
    suffixes = ("-wal", "-shm", "-writers")
    companions = [tmp_path / f"test_weige.sqlite3{suffix}" for suffix in suffixes]
    for path in [database, *companions]:
        path.write_bytes(b"x")
    other = tmp_path / "other.sqlite3-writers"
    other.write_bytes(b"x")

    DatabaseCreation(connection)._destroy_test_db(str(database), verbosity=0)

    assert not database.exists()
    assert [path.name for path in companions if path.exists()] == []
    assert other.exists()


def test_a_missing_companion_is_no_error(tmp_path):
    database = tmp_path / "test_weige.sqlite3"
    database.write_bytes(b"x")
    DatabaseCreation(connection)._destroy_test_db(str(database), verbosity=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SpatiaLite backend's own")
def test_the_backend_uses_it():
    assert isinstance(connection.creation, DatabaseCreation)
