"""SpatiaLite backend that works on Pythons whose sqlite3 cannot load extensions.

Django's SpatiaLite backend needs ``sqlite3.Connection.enable_load_extension``, which
pyenv builds and macOS's system Python leave out. When the standard module lacks it, this
backend talks to SQLite through the ``sqlean.py`` package instead: a drop-in ``sqlite3``
build that allows extensions. Everything else is Django's own SpatiaLite backend.
"""

import datetime
import decimal
import fcntl
import os
from collections.abc import Mapping
from itertools import tee

from django.contrib.gis.db.backends.spatialite.adapter import SpatiaLiteAdapter
from django.contrib.gis.db.backends.spatialite.base import DatabaseWrapper as SpatiaLiteWrapper
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.sqlite3 import base as sqlite_base
from django.db.backends.sqlite3._functions import register as register_functions
from django.utils.asyncio import async_unsafe

from gis.db.backends.spatialite.creation import WRITER_LOCK_SUFFIX, DatabaseCreation
from gis.db.backends.spatialite.schema import SchemaEditor
from gis.db.sqlite_driver import STDLIB_CAN_LOAD_EXTENSIONS, NoExtensionLoading, dbapi


def _sqlean_dbapi():
    try:
        sqlean_dbapi = dbapi()
    except NoExtensionLoading as exc:  # pragma: no cover - depends on the environment
        raise ImproperlyConfigured(str(exc)) from exc
    # The same type conversions Django registers on the standard module.
    sqlean_dbapi.register_converter("bool", b"1".__eq__)
    sqlean_dbapi.register_converter("date", sqlite_base.decoder(sqlite_base.parse_date))
    sqlean_dbapi.register_converter("time", sqlite_base.decoder(sqlite_base.parse_time))
    sqlean_dbapi.register_converter("datetime", sqlite_base.decoder(sqlite_base.parse_datetime))
    sqlean_dbapi.register_converter("timestamp", sqlite_base.decoder(sqlite_base.parse_datetime))
    sqlean_dbapi.register_adapter(decimal.Decimal, str)
    sqlean_dbapi.register_adapter(datetime.date, sqlite_base.adapt_date)
    sqlean_dbapi.register_adapter(datetime.datetime, sqlite_base.adapt_datetime)
    # GeoDjango's adapter only "conforms" to the standard module's PrepareProtocol.
    sqlean_dbapi.register_adapter(SpatiaLiteAdapter, str)
    return sqlean_dbapi


Database = dbapi() if STDLIB_CAN_LOAD_EXTENSIONS else _sqlean_dbapi()


class CursorWrapper(Database.Cursor):
    """Django's format/pyformat to qmark/named conversion on the chosen driver's cursor."""

    convert_query = sqlite_base.SQLiteCursorWrapper.convert_query

    def execute(self, query, params=None):
        if params is None:
            return Database.Cursor.execute(self, query)
        param_names = list(params) if isinstance(params, Mapping) else None
        query = self.convert_query(query, param_names=param_names)
        return Database.Cursor.execute(self, query, params)

    def executemany(self, query, param_list):
        peekable, param_list = tee(iter(param_list))
        if (params := next(peekable, None)) and isinstance(params, Mapping):
            param_names = list(params)
        else:
            param_names = None
        query = self.convert_query(query, param_names=param_names)
        return Database.Cursor.executemany(self, query, param_list)


class DatabaseWrapper(SpatiaLiteWrapper):
    """Django's SpatiaLite backend, plus a queue for writers.

    Transactions start with BEGIN IMMEDIATE (settings), so each holds SQLite's write lock
    from its first statement. SQLite makes a second writer poll for the lock with growing
    sleeps (1, 2, 5, 10 … 100 ms), so under concurrent writes (several server workers taking
    reports) most of the time goes to sleeping. Before BEGIN, a connection to a database file
    therefore takes an exclusive flock on "<file>-writers" (released at commit or rollback):
    waiting writers queue in the kernel and the next one starts the moment the lock is free.
    SQLite's own locking still guarantees correctness; the flock only orders the waiters.
    """

    Database = Database
    SchemaEditorClass = SchemaEditor
    creation_class = DatabaseCreation
    _writer_lock_fd: int | None = None

    def _writer_lock_path(self) -> str | None:
        name = str(self.settings_dict.get("NAME") or "")
        if not name or name == ":memory:" or name.startswith("file:"):
            return None
        return f"{name}{WRITER_LOCK_SUFFIX}"

    def _take_writer_lock(self) -> None:
        path = self._writer_lock_path()
        if path is None or self._writer_lock_fd is not None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._writer_lock_fd = fd

    def _release_writer_lock(self) -> None:
        fd, self._writer_lock_fd = self._writer_lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def _start_transaction_under_autocommit(self):
        self._take_writer_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer_lock()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_writer_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_writer_lock()

    @async_unsafe
    def get_new_connection(self, conn_params):
        if STDLIB_CAN_LOAD_EXTENSIONS:
            return super().get_new_connection(conn_params)
        conn = Database.connect(**conn_params)
        register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA legacy_alter_table = OFF")
        for init_command in self.init_commands:
            if init_command := init_command.strip():
                conn.execute(init_command)
        conn.enable_load_extension(True)
        for path in self.lib_spatialite_paths:
            try:
                conn.load_extension(path)
            except Database.OperationalError:
                continue
            break
        else:
            raise ImproperlyConfigured(
                "Unable to load the SpatiaLite library extension "
                f"(tried {', '.join(self.lib_spatialite_paths)}): "
                "install it with `apt-get install libsqlite3-mod-spatialite`."
            )
        return conn

    def prepare_database(self):
        # InitSpatialMetaData, not Django's InitSpatialMetaDataFull: the "full" variant adds
        # ISO-metadata triggers that newer SQLite releases reject during ALTER TABLE RENAME
        # ("error in trigger ISO_metadata_reference_row_id_value_insert: no such column:
        # rowid"), which breaks migrations that rebuild a table. The core metadata is all
        # GeoDjango uses.
        with self.cursor() as cursor:
            cursor.execute("PRAGMA table_info(geometry_columns);")
            if cursor.fetchall() == []:
                cursor.execute("SELECT InitSpatialMetaData(1)")

    def create_cursor(self, name=None):
        if STDLIB_CAN_LOAD_EXTENSIONS:
            return super().create_cursor(name)
        return self.connection.cursor(factory=CursorWrapper)
