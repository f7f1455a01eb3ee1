import contextlib
import os

from django.db.backends.sqlite3.creation import DatabaseCreation as SQLiteCreation

# The lock file of the backend's writer queue sits beside the database file.
WRITER_LOCK_SUFFIX = "-writers"
# Files kept beside a database file: SQLite's write-ahead log and its index, the writers' lock.
COMPANION_SUFFIXES = ("-wal", "-shm", WRITER_LOCK_SUFFIX)


class DatabaseCreation(SQLiteCreation):
    """Django's test database handling, removing the database file's companions too."""

    def _destroy_test_db(self, test_database_name, verbosity):
        super()._destroy_test_db(test_database_name, verbosity)
        if test_database_name and not self.is_in_memory_db(test_database_name):
            for suffix in COMPANION_SUFFIXES:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{test_database_name}{suffix}")
