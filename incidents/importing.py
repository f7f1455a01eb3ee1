"""Importing incidents in bulk from CSV or GeoJSON (``manage.py import_incidents``).

Each good row becomes the same incident that one intake (incidents.services.intake) makes:
coordinates converted to WGS84 (the input kept), geotagged at the row's local report date,
normal deadline of its category in working time, state "reported", flags unassigned /
near_boundary / candidates, and a first "report" timeline entry.

How it stays fast and safe:

- Rows are read in chunks (``chunk_size``, default 20,000); each chunk is checked, converted
  (gis.crs.to_wgs84, vectorised), geotagged with one BulkGeotagger built once per run and
  written in its own transaction (incidents, then their timeline entries: COPY on PostgreSQL,
  executemany on SQLite). Outside a transaction a second thread with its own connection
  writes each chunk while the next one is read, checked and geotagged.
- Bad rows are skipped and listed with their row number, a stable reason code (REASONS) and a
  message; they never stop the good rows.
- Idempotent by external id: a row whose external id already exists is counted "unchanged".
  A run killed at any point leaves whole chunks committed; running it again skips them and
  writes the rest, so every good row ends up exactly once.
- Without ``id_field`` every good row gets an external id derived from what the import
  takes from it ("row-" and a hash of its point, its category value and its report time;
  "#2", "#3" … for later rows of the file with the same three), so re-running a file is
  idempotent too, also when it was renamed, reordered or grew rows, and a report found
  again in another export (an overlapping period, other columns) is not imported twice.
  Two reports of the same category at the same point and the same moment count as one
  across files. A file without report times uses its name instead of the time: its rows
  are told apart from another file's, and renaming it imports them again. Where the source
  has ids, name them.

Row numbers count data rows from 1 (a CSV's header line is not counted; a GeoJSON's features
in file order). Naive times are taken as Asia/Shanghai.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import itertools
import json
import math
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.contrib.gis.db.models import GeometryField
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    connection,
    connections,
    models,
    transaction,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from gis import crs as crs_tools
from incidents.geotagging import BulkGeotagger
from incidents.models import Category, Incident, Source, TimelineEntry
from incidents.services.intake import deadline_amount
from incidents.workflow import State
from incidents.working_time import (
    WorkingCalendar,
    deadlines_and_three_times,
)

NAIVE_TZ = ZoneInfo("Asia/Shanghai")
DEFAULT_CHUNK = 20_000
DEFAULT_ENCODING = "utf-8-sig"
EXTERNAL_ID_MAX = 64
_LOOKUP_BATCH = 2_000
# Chunks written at once outside a transaction: PostgreSQL works on each in its own server
# process; SQLite takes one writer at a time, so one thread writes while the next is built.
WRITER_THREADS = {"postgresql": 2}

REASONS = (
    "missing_id",
    "bad_id",
    "duplicate_in_file",
    "bad_coordinates",
    "out_of_range",
    "unknown_category",
    "bad_date",
)


class ImportFileError(ValueError):
    """The file or the options cannot be used at all (nothing about single rows)."""


@dataclass
class ImportOptions:
    format: str | None = None  # csv or geojson; default from the file name
    lon_field: str = "lon"
    lat_field: str = "lat"
    crs: str = "wgs84"
    category_field: str = "category"
    category_map: str | None = None  # CSV with columns source_value,category_code
    time_field: str | None = None
    time_format: str | None = None  # strptime format; default ISO 8601
    id_field: str | None = None
    source: str = Source.IMPORT
    encoding: str = DEFAULT_ENCODING
    delimiter: str = ","  # a CSV's cell separator
    chunk_size: int = DEFAULT_CHUNK


@dataclass
class Rejected:
    row: int
    reason: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "reason": self.reason, "message": self.message}


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    unassigned: int = 0
    near_boundary: int = 0
    seconds: float = 0.0
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, rows: _Rows) -> None:
        """Count a chunk once it is committed."""
        self.imported += rows.count
        self.unassigned += rows.unassigned
        self.near_boundary += rows.near_boundary

    def summary(self) -> dict:
        by_reason = Counter(r.reason for r in self.rejected)
        return {
            "rows": self.rows,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "unassigned": self.unassigned,
            "near_boundary": self.near_boundary,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
        }

    def report(self) -> dict:
        return {"summary": self.summary(), "rejected": [r.as_dict() for r in self.rejected]}


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


# The key under which a row read from the file carries a problem found while reading it.
PROBLEM = "\0problem"


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "geojson"):
            raise ImportFileError(_("unknown format %(fmt)s: use csv or geojson") % {"fmt": fmt})
        return fmt
    return "geojson" if path.suffix.lower() in (".geojson", ".json") else "csv"


# A wrong --encoding shows in the first rows: bytes that do not decode there stop the import
# with a hint; later ones (a damaged line in a good file) reject only their row.
ENCODING_PROBE_ROWS = 1000
# A row spanning more lines than this has a quoted cell that swallowed the lines after it (an
# unbalanced quote): refused, saying which lines, rather than imported with a huge cell.
MANY_LINES = 20


def _decoded_lines(handle, encoding: str, bad: list[int]) -> Iterator[str]:
    """The lines of a binary file as text; a line that does not decode is decoded with
    replacement characters and its number (from 1) appended to `bad`."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError:
            bad.append(number)
            yield raw.decode(encoding, errors="replace")
        if number == 1 and encoding == DEFAULT_ENCODING:
            encoding = "utf-8"  # the BOM can only open the file


def _csv_rows(path: Path, options: ImportOptions) -> Iterator[tuple[int, dict]]:
    bad: list[int] = []

    def wrong_encoding(where: str) -> ImportFileError:
        return ImportFileError(
            _("%(path)s is not %(encoding)s text (%(where)s); try --encoding gbk")
            % {"path": path.name, "encoding": options.encoding, "where": where}
        )

    if len(options.delimiter) != 1 or options.delimiter in '"\r\n':
        raise ImportFileError(
            _("the delimiter must be one character other than a quote or a line break, not %(d)r")
            % {"d": options.delimiter}
        )
    try:
        codecs.lookup(options.encoding)
        with path.open("rb") as handle:
            lines = _decoded_lines(handle, options.encoding, bad)
            reader = csv.reader(lines, delimiter=options.delimiter)
            columns = next(reader, [])
            if bad:
                raise wrong_encoding(_("the header"))
            wanted = [options.lon_field, options.lat_field, options.category_field]
            wanted += [f for f in (options.time_field, options.id_field) if f]
            missing = [c for c in wanted if c not in columns]
            if missing:
                message = _("%(path)s: no column %(missing)s (the columns are %(columns)s)") % {
                    "path": path.name,
                    "missing": ", ".join(missing),
                    "columns": ", ".join(columns),
                }
                if len(columns) == 1 and (other := _separator_in(columns[0], options.delimiter)):
                    message = _(
                        "%(message)s; the cells seem separated by %(d)r: try --delimiter %(a)s"
                    ) % {
                        "message": message,
                        "d": other,
                        "a": "tab" if other == "\t" else repr(other),
                    }
                raise ImportFileError(message)
            # as csv.DictReader reads them: blank lines skipped, missing cells absent
            number, last = 0, reader.line_num
            for cells in reader:
                first, last = last + 1, reader.line_num
                if not cells:
                    continue
                number += 1
                row = dict(zip(columns, cells))  # noqa: B905
                if bad and bad[-1] >= first:
                    if number <= ENCODING_PROBE_ROWS:
                        raise wrong_encoding(_("line %(line)d") % {"line": bad[-1]})
                    row[PROBLEM] = (
                        "bad_encoding",
                        _("line %(line)d is not %(encoding)s text")
                        % {"line": bad[-1], "encoding": options.encoding},
                    )
                elif last - first >= MANY_LINES:
                    row[PROBLEM] = (
                        "bad_row",
                        _(
                            "lines %(first)d to %(last)d make one row: a quoted cell runs "
                            "over them (an unbalanced quote?); none of them is imported"
                        )
                        % {"first": first, "last": last},
                    )
                yield number, row
    except LookupError:
        raise ImportFileError(
            _("unknown encoding %(encoding)s") % {"encoding": options.encoding}
        ) from None
    except csv.Error as exc:
        raise ImportFileError(
            _("%(path)s line %(line)d: %(error)s (an unbalanced quote?)")
            % {"path": path.name, "line": reader.line_num, "error": exc}
        ) from None


def _separator_in(header: str, delimiter: str) -> str | None:
    """The usual CSV separator a one-column header seems to use instead of `delimiter`."""
    for candidate in (",", ";", "\t", "|", "，"):  # the last: a full-width comma
        if candidate != delimiter and candidate in header:
            return candidate
    return None


def _data_lines(path: Path) -> int:
    """The lines of a CSV after its header (a line without a final line break counts)."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def _geojson_rows(
    path: Path, options: ImportOptions, expect: Callable[[int], object] | None = None
) -> Iterator[tuple[int, dict]]:
    from gis.spatial_io import SpatialFileError, read_features

    try:
        # No crs given: the coordinates are taken as they are and converted below with
        # options.crs, so that the input is kept as reported.
        result = read_features(
            path, encoding=None if options.encoding == DEFAULT_ENCODING else options.encoding
        )
    except SpatialFileError as exc:
        raise ImportFileError(str(exc)) from None
    frame = result.frame
    props = [c for c in frame.columns if c != frame.geometry.name]
    wanted = [options.category_field]
    wanted += [f for f in (options.time_field, options.id_field) if f]
    missing = [name for name in wanted if name not in props]
    if missing and len(frame):
        raise ImportFileError(
            _("%(path)s: no property %(missing)s (the properties are %(properties)s)")
            % {"path": path.name, "missing": ", ".join(missing), "properties": ", ".join(props)}
        )
    if expect:
        expect(len(frame))
    records = frame[props].to_dict("records")
    for number, (record, geom) in enumerate(zip(records, frame.geometry, strict=True), start=1):
        row = {k: _property_text(v) for k, v in record.items()}
        if options.id_field and row.get(options.id_field) == UNREADABLE_NUMBER:
            row[PROBLEM] = (
                "bad_id",
                _("the external id is a number too large to read exactly (write ids as strings)"),
            )
        if geom is not None and not geom.is_empty and geom.geom_type == "Point":
            row[options.lon_field], row[options.lat_field] = repr(geom.x), repr(geom.y)
        else:
            row[options.lon_field] = row[options.lat_field] = ""
            row["__geometry__"] = "missing" if geom is None else geom.geom_type
        yield number, row


# Whole numbers a float64 holds exactly: a GeoJSON number property read as float (a column
# of integers with a null among them) is written back as the integer it was.
_EXACT_FLOAT_INT = 2**53
UNREADABLE_NUMBER = "\0unreadable"


def _property_text(value) -> str:
    """A property as text, as the file wrote it: 7 for 7 and 7.0 (a column of integers
    with a null is read as floats), "" for null; a whole number too large for a float to
    hold exactly is UNREADABLE_NUMBER (the row is refused rather than given a wrong id)."""
    if _is_missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        if abs(value) >= _EXACT_FLOAT_INT:
            return UNREADABLE_NUMBER
        return str(int(value))
    return str(value)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _chunks(rows: Iterator[tuple[int, dict]], size: int) -> Iterator[list[tuple[int, dict]]]:
    chunk: list[tuple[int, dict]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ----------------------------------------------------------------------------------------------
# Checking rows
# ----------------------------------------------------------------------------------------------


def load_category_map(path: str | Path) -> dict[str, Category]:
    """{source value: Category} from a CSV with columns source_value,category_code.

    The map is read as UTF-8 (with or without BOM), else as GB18030 (a superset of GBK), so a
    map saved by Excel works whatever the encoding of the data file."""
    path = Path(path)
    rows = None
    for encoding in (DEFAULT_ENCODING, "gb18030"):
        try:
            with path.open(encoding=encoding, newline="") as handle:
                rows = list(csv.DictReader(handle))
            break
        except UnicodeDecodeError:
            continue
        except OSError as exc:
            raise ImportFileError(f"{path.name}: {exc}") from None
    if rows is None:
        raise ImportFileError(_("%(path)s is neither UTF-8 nor GBK text") % {"path": path.name})
    if rows and not {"source_value", "category_code"} <= set(rows[0]):
        raise ImportFileError(
            _("%(path)s needs the columns source_value and category_code") % {"path": path.name}
        )
    if not rows:
        raise ImportFileError(_("%(path)s maps no values") % {"path": path.name})
    by_code = {c.code: c for c in Category.objects.all()}
    mapping: dict[str, Category] = {}
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        code = (row["category_code"] or "").strip()
        if code not in by_code:
            raise ImportFileError(
                _("%(path)s row %(row)d: unknown category code %(code)s")
                % {"path": path.name, "row": number, "code": code}
            )
        value = (row["source_value"] or "").strip()
        if value in mapping and mapping[value] != by_code[code]:
            raise ImportFileError(
                _(
                    "%(path)s row %(row)d: %(value)r is mapped to %(code)s here and to "
                    "%(other)s in row %(first)d"
                )
                % {
                    "path": path.name,
                    "row": number,
                    "value": value,
                    "code": code,
                    "other": mapping[value].code,
                    "first": first_row[value],
                }
            )
        mapping[value] = by_code[code]
        first_row.setdefault(value, number)
    return mapping


DERIVED_ID_PREFIX = "row-"


def content_key(lon: float, lat: float, category_value: str, when: str) -> bytes:
    """What a row without an external id is known by: a hash (80 bits) of what the import
    takes from it: its point (as numbers), its category value (before any category map) and
    its report time (as an instant), or, for a file without times, the file's name.

    Changing what goes in here, or how, changes the ids of rows imported before: re-running
    an old file would then import its rows again (test_derived_ids_are_pinned)."""
    text = json.dumps([repr(float(lon)), repr(float(lat)), category_value, when])
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()[:10]


def derived_id(key: bytes, occurrence: int) -> str:
    """The external id of the occurrence-th row (from 1) of the file with this content key."""
    suffix = f"#{occurrence}" if occurrence > 1 else ""
    return f"{DERIVED_ID_PREFIX}{key.hex()}{suffix}"


# Report times an import accepts: from this moment to a day after the import started (clocks
# and time zones of the exporting system may be off by hours; a report from next year is a
# wrong date, and would give a deadline past what dates can hold).
EARLIEST_TIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
FUTURE_SLACK = datetime.timedelta(days=1)


def parse_time(text: str, fmt: str | None) -> datetime.datetime:
    text = text.strip()
    if not text:
        raise ValueError(_("the time is empty"))
    if fmt:
        value = datetime.datetime.strptime(text, fmt)
    else:
        value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:  # strptime and fromisoformat give a fixed offset or none
        value = value.replace(tzinfo=NAIVE_TZ)
    return value


def _number(text) -> float:
    if isinstance(text, bool) or (isinstance(text, str) and "_" in text):
        raise ValueError("not a number")  # Python reads 104_065 as 104065; a file means no such
    try:
        value = float(text)  # surrounding whitespace is allowed
    except ValueError:
        value = float(str(text).strip().replace(",", "."))  # decimal comma as some exports write
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


@dataclass
class _Good:
    row: int
    external_id: str
    lon: float
    lat: float
    category: Category
    reported_at: datetime.datetime


class _Checker:
    """Checks rows one by one; remembers the external ids seen in the file."""

    def __init__(self, path: Path, options: ImportOptions, now: datetime.datetime):
        self.options = options
        self.now = now
        self.file_name = path.name  # what tells rows without times from another file's
        self.seen: set[str] = set()  # the external ids of the file's good rows (id_field)
        self.occurrences: Counter[bytes] = Counter()  # good rows of each content key so far
        self.by_code = {c.code: c for c in Category.objects.all()}
        self.mapping = load_category_map(options.category_map) if options.category_map else None

    def check(self, number: int, row: dict) -> _Good | Rejected:
        o = self.options
        if PROBLEM in row:  # found while reading (_csv_rows, _geojson_rows)
            reason, message = row[PROBLEM]
            return Rejected(number, reason, message)
        if o.id_field:
            external_id = (row.get(o.id_field) or "").strip()
            if not external_id:
                return Rejected(number, "missing_id", _("the external id is empty"))
            if len(external_id) > EXTERNAL_ID_MAX:
                return Rejected(
                    number,
                    "bad_id",
                    _("the external id is longer than %(n)d characters") % {"n": EXTERNAL_ID_MAX},
                )
        if o.id_field and external_id in self.seen:  # an earlier good row has it
            return Rejected(
                number,
                "duplicate_in_file",
                _("the external id %(id)s appears earlier in the file") % {"id": external_id},
            )
        raw_lon, raw_lat = row.get(o.lon_field), row.get(o.lat_field)
        try:
            lon, lat = _number(raw_lon), _number(raw_lat)
        except (TypeError, ValueError):
            if "__geometry__" in row:
                message = _("the geometry is %(kind)s, not a point") % {"kind": row["__geometry__"]}
            else:
                message = _("the coordinates %(lon)r, %(lat)r are not numbers") % {
                    "lon": raw_lon,
                    "lat": raw_lat,
                }
            return Rejected(number, "bad_coordinates", message)
        if not (abs(lon) <= 180.0 and abs(lat) <= 90.0):  # as crs_tools.lonlat_valid_mask
            return Rejected(
                number,
                "out_of_range",
                _("lon=%(lon)s, lat=%(lat)s is outside -180..180, -90..90")
                % {"lon": lon, "lat": lat},
            )
        value = (row.get(o.category_field) or "").strip()
        if self.mapping is not None:
            category = self.mapping.get(value)
            if category is None:
                return Rejected(
                    number,
                    "unknown_category",
                    _("%(value)r is not in the category map") % {"value": value},
                )
        else:
            category = self.by_code.get(value)
            if category is None:
                return Rejected(
                    number,
                    "unknown_category",
                    _("unknown category code %(value)r") % {"value": value},
                )
        if not category.active:
            return Rejected(
                number,
                "unknown_category",
                _("category %(code)s is no longer in use") % {"code": category.code},
            )
        if o.time_field:
            text = row.get(o.time_field) or ""
            try:
                reported_at = parse_time(text, o.time_format)
            except ValueError:
                return Rejected(
                    number,
                    "bad_date",
                    _("the time %(value)r does not match %(format)s")
                    % {"value": text, "format": o.time_format or "ISO 8601"},
                )
            if not EARLIEST_TIME <= reported_at <= self.now + FUTURE_SLACK:
                return Rejected(
                    number,
                    "bad_date",
                    _("the time %(value)r is not between %(first)s and now")
                    % {"value": text, "first": f"{EARLIEST_TIME:%Y-%m-%d}"},
                )
        else:
            reported_at = self.now
        if o.id_field:
            self.seen.add(external_id)  # only good rows: a later good copy of a bad row counts
        else:  # unique in the file by construction
            when = reported_at.astimezone(datetime.UTC).isoformat() if o.time_field else None
            key = content_key(lon, lat, value, when or f"file:{self.file_name}")
            self.occurrences[key] += 1
            external_id = derived_id(key, self.occurrences[key])
        return _Good(number, external_id, lon, lat, category, reported_at)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def existing_ids(ids: list[str]) -> set[str]:
    """The ids among `ids` that some incident already has as its external id."""
    with connection.cursor() as cursor:
        return set(_pks_by_external_id(connection, cursor, ids))


def _pks_by_external_id(conn, cursor, ids: list[str]) -> dict[str, int]:
    """{external id: incident id} for the incidents among `ids` (one array parameter on
    PostgreSQL, batches of IN lists elsewhere)."""
    meta = Incident._meta
    quote = conn.ops.quote_name
    column, pk = quote(meta.get_field("external_id").column), quote(meta.pk.column)
    select = f"SELECT {column}, {pk} FROM {meta.db_table} WHERE {column}"
    if conn.vendor == "postgresql":
        # Through the unique index whatever the statistics say: while a big import fills a
        # table the planner last saw (nearly) empty it would scan the whole table for every
        # chunk, ever longer. The setting is local to a savepoint and put back after.
        with transaction.atomic(using=conn.alias):
            cursor.execute("SELECT current_setting('enable_seqscan')")
            (before,) = cursor.fetchone()
            cursor.execute("SELECT set_config('enable_seqscan', 'off', true)")
            cursor.execute(f"{select} = ANY(%s)", [list(ids)])
            found = dict(cursor.fetchall())
            cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [before])
        return found
    found: dict[str, int] = {}
    size = conn.features.max_query_params or _LOOKUP_BATCH
    for i in range(0, len(ids), size):
        batch = ids[i : i + size]
        cursor.execute(f"{select} IN ({', '.join(['%s'] * len(batch))})", batch)
        found.update(cursor.fetchall())
    return found


class _Table:
    """Writes rows of a model's table without model instances.

    The columns are the model's concrete fields (the primary key only when given), so the
    writer follows the model. ``insert`` takes {attname: values}: a list or array (one value
    per row) or a single value for every row; fields not given take their default. Values
    are adapted as Django adapts them for the connection: datetimes as the backend stores
    them, JSON as text (jsonb parses it on PostgreSQL), points from their coordinates.
    Rows go in with COPY on PostgreSQL and executemany elsewhere.
    """

    def __init__(self, model, connection, given: set[str]):
        self.connection = connection
        self.postgres = connection.vendor == "postgresql"
        self.table = model._meta.db_table
        fields = [f for f in model._meta.concrete_fields if not f.primary_key or f.attname in given]
        unknown = given - {f.attname for f in fields}
        if unknown:
            raise ValueError(f"{self.table} has no fields {', '.join(sorted(unknown))}")
        self.fields = fields
        self.given = given
        self.defaults = {}
        for f in fields:
            if f.attname not in given and self.postgres:
                self.defaults[f.attname] = f.get_default()  # _copy_texts writes it
            elif f.attname not in given:
                default = f.get_default()
                self.defaults[f.attname] = (
                    json.dumps(default, cls=f.encoder)  # text, as _adapt writes JSON
                    if isinstance(f, models.JSONField)
                    else f.get_db_prep_save(default, connection)
                )
        quote = connection.ops.quote_name
        self.columns = ", ".join(quote(f.column) for f in fields)

    def key_fields(self) -> list:
        """The fields whose column has a foreign-key constraint in the database."""
        return [f for f in self.fields if isinstance(f, models.ForeignKey) and f.db_constraint]

    def check_keys(self, cursor, given: dict, own: Collection[str] = ()) -> None:
        """Check the foreign keys of the rows just written from `given` (as insert takes it)
        with one query per key: each referenced row must exist, and it is locked FOR KEY
        SHARE until the transaction ends, as PostgreSQL's own check of each row locks it.
        Fields in `own` refer to rows this transaction has just written itself (they exist,
        and no one else sees them yet), and are not asked about. Raises IntegrityError
        naming the column and the missing values."""
        quote = self.connection.ops.quote_name
        for f in self.key_fields():
            if f.attname in own:
                continue
            values = given.get(f.attname, self.defaults.get(f.attname))
            if not isinstance(values, list | tuple | np.ndarray):
                values = [values]
            keys = set(np.asarray(values).tolist() if isinstance(values, np.ndarray) else values)
            keys.discard(None)
            if not keys:
                continue
            target = f.target_field
            table, column = target.model._meta.db_table, quote(target.column)
            cursor.execute(
                f"SELECT {column} FROM {quote(table)} WHERE {column} = ANY(%s) FOR KEY SHARE",
                [sorted(keys)],
            )
            missing = keys - {key for (key,) in cursor.fetchall()}
            if missing:
                shown = ", ".join(map(str, sorted(missing)[:10]))
                raise IntegrityError(
                    f"{self.table}.{f.column}: no {table} row with {target.column} {shown}"
                    + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
                )

    def _adapt(self, field, values, n: int) -> list[Iterable]:
        """The parameter columns of one field (a point has two on SQLite: x and y)."""
        single = not isinstance(values, list | tuple | np.ndarray)
        if isinstance(field, GeometryField):
            lons, lats = values
            if self.postgres:
                return [_ewkb_hex(lons, lats, field.srid)]
            return [np.asarray(lons, dtype=float).tolist(), np.asarray(lats, dtype=float).tolist()]
        if single:
            values = [values]
        if isinstance(field, models.DateTimeField) and not self.postgres:
            values = [self._datetime(v) for v in values]
        elif isinstance(field, models.JSONField):
            values = _json_texts(values, field.encoder)
        elif isinstance(values, np.ndarray):
            values = values.tolist()
        if single:
            return [itertools.repeat(values[0], n)]
        if len(values) != n:
            raise ValueError(f"{field.attname}: {len(values)} values for {n} rows")
        return [values]

    def _datetime(self, value):
        """connection.ops.adapt_datetimefield_value, without its checks for aware values."""
        if value is not None and value.utcoffset() is not None and settings.USE_TZ:
            return str(value.astimezone(self.connection.timezone).replace(tzinfo=None))
        return self.connection.ops.adapt_datetimefield_value(value)

    def insert(self, cursor, n: int, given: dict) -> None:
        if set(given) != self.given:
            raise ValueError(f"{self.table}: expected the fields {sorted(self.given)}")
        if n == 0:
            return
        params: list[Iterable] = []
        placeholders = []
        for f in self.fields:
            if self.postgres:
                if f.attname in given:
                    adapted = [_copy_texts(f, given[f.attname], n)]
                else:
                    adapted = [_copy_texts(f, self.defaults[f.attname], n, single=True)]
            elif f.attname in given:
                adapted = self._adapt(f, given[f.attname], n)
            else:
                adapted = [itertools.repeat(self.defaults[f.attname], n)]
            params.extend(adapted)
            if isinstance(f, GeometryField) and not self.postgres:
                placeholders.append(f"MakePoint(%s, %s, {int(f.srid)})")
            else:
                placeholders.append("%s")
        rows = zip(*params)  # noqa: B905 - the repeated constants are endless
        if self.postgres:
            text = "\n".join(map("\t".join, rows)) + "\n"
            with cursor.cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN") as copy:
                copy.write(text)
        else:
            cursor.executemany(
                f"INSERT INTO {self.table} ({self.columns}) VALUES ({', '.join(placeholders)})",
                rows,
            )


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")


def _copy_escape(text: str) -> str:
    """`text` as a value of COPY's text format: backslash, tab, newline and carriage return
    escaped (str.replace, several times faster than str.translate on JSON full of \\u)."""
    if not _NEEDS_ESCAPE.search(text):
        return text
    text = text.replace("\\", "\\\\")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_NULL = "\\N"


def _copy_texts(field, values, n: int, single: bool | None = None) -> Iterable[str]:
    """One column in COPY's text format: each value as PostgreSQL reads it (escaped, NULL
    as \\N); a single value (by default: one that is not a list or array) is repeated for
    every row."""
    if isinstance(field, GeometryField) and not single:
        lons, lats = values
        return _ewkb_hex(lons, lats, field.srid)
    if single is None:
        single = not isinstance(values, list | tuple | np.ndarray)
    if single:
        values = [values]
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(field, models.JSONField):
        texts = _json_texts(values, field.encoder, _copy_escape)
    elif isinstance(field, models.BooleanField):
        texts = [_NULL if v is None else ("t" if v else "f") for v in values]
    elif isinstance(field, models.DateTimeField | models.DateField):
        texts = [_NULL if v is None else v.isoformat() for v in values]
    elif isinstance(field, models.FloatField):
        texts = [_NULL if v is None else repr(float(v)) for v in values]
    elif isinstance(field, models.CharField | models.TextField):
        texts = [_NULL if v is None else _copy_escape(str(v)) for v in values]
    else:  # integers, keys, decimals
        texts = [_NULL if v is None else str(v) for v in values]
    if single:
        return itertools.repeat(texts[0], n)
    if len(texts) != n:
        raise ValueError(f"{field.attname}: {len(texts)} values for {n} rows")
    return texts


class _JSONText(str):
    """A JSON field's value given as its JSON text already."""


def _json_texts(values, encoder, escape: Callable[[str], str] | None = None) -> list[str]:
    """JSON text of each value as Django writes it (json.dumps with the field's encoder),
    passed through `escape` if given (_JSONText is already JSON); one object repeated is
    serialised once."""
    texts: dict[int, str] = {}
    out = []
    for value in values:
        text = texts.get(id(value))
        if text is None:
            text = value if isinstance(value, _JSONText) else json.dumps(value, cls=encoder)
            text = texts[id(value)] = escape(text) if escape else text
        out.append(text)
    return out


def _ewkb_hex(lons, lats, srid: int) -> list[str]:
    """Points as hex EWKB (little endian, with SRID), as PostGIS reads them."""
    n = len(lons)
    record = np.dtype(
        [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
    )
    points = np.empty(n, dtype=record)
    points["order"] = 1
    points["type"] = 0x20000001  # Point with SRID
    points["srid"] = srid
    points["x"], points["y"] = lons, lats
    text = points.tobytes().hex()
    size = 2 * record.itemsize
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class _Rows:
    """One chunk's new incidents as columns ({Incident attname: values}) and the data of
    their "report" timeline entries."""

    count: int
    incident: dict
    entry_data: list[dict]
    unassigned: int
    near_boundary: int


class _Writer:
    """Writes a chunk's incidents and their first timeline entries in one transaction.

    PostgreSQL checks foreign keys a row at a time: a query per key per row at commit (seven
    for an incident and its entry), which costs about as much as writing the rows. Where the
    database role may set ``session_replication_role`` (a superuser, or ``GRANT SET ON
    PARAMETER session_replication_role`` on PostgreSQL 15 and later) and the tables have no
    triggers but those checks (_may_skip_row_key_checks), the writer checks each chunk's
    keys with one query per key instead (_Table.check_keys: the same existence test
    and the same locks) and sets the parameter to ``replica`` for the chunk's own writes, so
    that the row-by-row checks do not run. The parameter is put back before the chunk's
    transaction ends, and a failed chunk rolls it back with everything else. Elsewhere, and
    on SQLite, the database checks the keys itself.
    """

    def __init__(self, connection, incident_fields: set[str]):
        self.connection = connection
        self.postgres = connection.vendor == "postgresql"
        fields = set(incident_fields) | {"created_at"}
        if self.postgres:  # ids are drawn from the sequence first, so COPY can write them
            fields.add(Incident._meta.pk.attname)
        self.incidents = _Table(Incident, connection, fields)
        self.entries = _Table(
            TimelineEntry, connection, {"incident_id", "at", "action", "to_state", "data"}
        )
        self.checks_keys = self.postgres and _may_skip_row_key_checks(
            connection, (self.incidents, self.entries)
        )

    def write(self, rows: _Rows) -> None:
        now = timezone.now()
        columns = {**rows.incident, "created_at": now}
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            if self.checks_keys:
                cursor.execute("SELECT set_config('session_replication_role', 'replica', true)")
            if self.postgres:
                ids = self._new_ids(cursor, rows.count)
                columns[Incident._meta.pk.attname] = ids
                self.incidents.insert(cursor, rows.count, columns)
            else:
                self.incidents.insert(cursor, rows.count, columns)
                ids = self._ids_of(cursor, rows.incident["external_id"])
            entries = {
                "incident_id": ids,
                "at": now,
                "action": "report",
                "to_state": State.REPORTED,
                "data": rows.entry_data,
            }
            self.write_entries(cursor, rows.count, entries)
            if self.checks_keys:
                # back to the row-by-row checks first: later statements in a caller's
                # transaction must not run without them
                cursor.execute("SELECT set_config('session_replication_role', 'origin', true)")
                self.incidents.check_keys(cursor, columns)
                self.entries.check_keys(cursor, entries, own={"incident_id"})

    def write_entries(self, cursor, n: int, columns: dict) -> None:
        """Insert the chunk's "report" timeline entries (inside the chunk's transaction)."""
        self.entries.insert(cursor, n, columns)

    def _new_ids(self, cursor, n: int) -> list[int]:
        meta = Incident._meta
        cursor.execute(
            "SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, n],
        )
        return cursor.fetchone()[0]

    def _ids_of(self, cursor, external_ids: list[str]) -> list[int]:
        found = _pks_by_external_id(self.connection, cursor, external_ids)
        return [found[e] for e in external_ids]


def _may_skip_row_key_checks(connection, tables: Iterable[_Table]) -> bool:
    """Whether the writer may check the keys of `tables` itself (see _Writer): the role may
    set session_replication_role and lock the referenced rows (UPDATE on some column, which
    FOR KEY SHARE needs), and every trigger on the tables is PostgreSQL's own for a foreign
    key that _Table.check_keys checks. Replica mode turns off every trigger of the writes,
    so a table with any other (a user's trigger, the re-check of a deferrable unique
    constraint) is left to the database, as is a foreign key the models do not declare."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('session_replication_role')")
        if cursor.fetchone()[0] != "origin":
            return False  # set by someone else for a reason: leave it alone
        if connection.pg_version >= 150000:
            cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
        else:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            return False
        for table in tables:
            targets = {f.target_field.model._meta.db_table for f in table.key_fields()}
            for target in sorted(targets):
                cursor.execute("SELECT has_any_column_privilege(%s, 'UPDATE')", [target])
                if not cursor.fetchone()[0]:
                    return False
            # triggers fired by inserting into the table: only foreign-key checks of
            # columns check_keys covers (the referenced side's triggers fire on deletes and
            # updates of this table, which the writer does not make)
            cursor.execute(
                """
                SELECT c.contype, c.confrelid::regclass::text, (
                    SELECT array_agg(a.attname::text) FROM pg_attribute a
                    WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
                )
                FROM pg_trigger t LEFT JOIN pg_constraint c ON c.oid = t.tgconstraint
                WHERE t.tgrelid = %s::regclass AND t.tgenabled <> 'D'
                    AND (t.tgtype & 4) <> 0  -- fires on INSERT
                """,
                [table.table],
            )
            covered = {(f.column, f.target_field.model._meta.db_table) for f in table.key_fields()}
            for kind, target, columns in cursor.fetchall():
                if kind != "f" or len(columns) != 1 or (columns[0], target) not in covered:
                    return False
    return True


class _Builder:
    """Turns checked rows into the columns of new incidents (the fields intake sets)."""

    FIELDS = {
        "location",
        "input_crs",
        "input_lon",
        "input_lat",
        "category_id",
        "source",
        "urgent",
        "reported_at",
        "external_id",
        "state",
        "street_id",
        "community_id",
        "grid_id",
        "unit_id",
        "boundary_version_id",
        "unassigned",
        "near_boundary",
        "boundary_candidates",
        "deadline",
        "deadline_note",
        "overdue_3x_at",
    }

    def __init__(self, options: ImportOptions):
        self.options = options
        self.tagger = BulkGeotagger()
        self.calendar = WorkingCalendar.from_settings()
        self._data = {
            (unassigned, near): {"unassigned": unassigned, "near_boundary": near}
            for unassigned in (False, True)
            for near in (False, True)
        }

    def _deadlines(self, goods: list[_Good]) -> dict[str, list]:
        """The columns deadline, deadline_note and overdue_3x_at: for each row what intake's
        deadline_fields gives for the category's normal deadline, computed for the whole
        chunk at once (deadlines_and_three_times gives the same values as compute_deadline
        and three_times_overdue_at)."""
        amounts = {}
        for good in goods:
            category = good.category
            if category.pk not in amounts:
                amounts[category.pk] = deadline_amount(category, False, self.calendar)
        per_row = [amounts[g.category.pk] for g in goods]
        starts = [g.reported_at for g in goods]
        deadlines, three_times = deadlines_and_three_times(
            self.calendar, starts, [a for a, _ in per_row], [u for _, u in per_row]
        )
        return {
            "deadline": deadlines.due,
            "deadline_note": deadlines.warnings(),
            "overdue_3x_at": three_times,
        }

    def build(self, goods: list[_Good]) -> _Rows:
        o = self.options
        n = len(goods)
        in_lon = np.fromiter((g.lon for g in goods), dtype=float, count=n)
        in_lat = np.fromiter((g.lat for g in goods), dtype=float, count=n)
        lons, lats = crs_tools.to_wgs84(in_lon, in_lat, o.crs)
        lons, lats = np.atleast_1d(lons), np.atleast_1d(lats)
        here = timezone.get_current_timezone()
        days = [g.reported_at.astimezone(here).date() for g in goods]
        tags = self.tagger.tag(lons, lats, days)
        unassigned = tags.microgrid == -1
        near = tags.near_boundary
        no_candidates: list = []
        candidates: list = [no_candidates] * n
        texts = tags.candidate_texts()
        for i in np.flatnonzero(near).tolist():
            candidates[i] = _JSONText(texts[i])

        def unit_ids(values: np.ndarray) -> list:
            return [None if v == -1 else v for v in values.tolist()]

        incident = {
            "location": (lons, lats),
            "input_crs": o.crs,
            "input_lon": in_lon,
            "input_lat": in_lat,
            "category_id": [g.category.pk for g in goods],
            "source": o.source,
            "urgent": False,
            "reported_at": [g.reported_at for g in goods],
            "external_id": [g.external_id for g in goods],
            "state": State.REPORTED,
            "street_id": unit_ids(tags.street),
            "community_id": unit_ids(tags.community),
            "grid_id": unit_ids(tags.grid),
            "unit_id": unit_ids(tags.microgrid),
            "boundary_version_id": unit_ids(tags.version),
            "unassigned": unassigned,
            "near_boundary": near,
            "boundary_candidates": candidates,
            **self._deadlines(goods),
        }
        data = self._data
        entry_data = [data[a, b] for a, b in zip(unassigned.tolist(), near.tolist(), strict=True)]
        return _Rows(n, incident, entry_data, int(unassigned.sum()), int(near.sum()))


def import_incidents(
    path: str | Path,
    options: ImportOptions,
    progress: Callable[[int], object] | None = None,
    expect: Callable[[int], object] | None = None,
) -> ImportResult:
    """Import the incidents of a CSV or GeoJSON file (see the module docstring).

    `progress` is called with the number of rows of each chunk once it is stored (from the
    writer thread that stored it); `expect`, before the
    first, with about how many rows there are (a CSV's lines after the header, which a cell
    over several lines or a blank line makes more than its rows; a GeoJSON's features)."""
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(_("%(path)s: file not found") % {"path": path})
    if options.source not in Source.values:
        raise ImportFileError(
            _("source %(source)r is not one of %(known)s")
            % {"source": options.source, "known": ", ".join(Source.values)}
        )
    if options.crs not in crs_tools.SUPPORTED:
        raise ImportFileError(
            _("crs %(crs)r is not one of %(known)s")
            % {"crs": options.crs, "known": ", ".join(crs_tools.SUPPORTED)}
        )
    fmt = _format_of(path, options.format)
    if progress:  # called from this thread and the writer threads: one call at a time
        progress = _one_at_a_time(progress)
    checker = _Checker(path, options, timezone.now())
    builder = _Builder(options)
    if fmt == "csv":
        rows = _csv_rows(path, options)
        if expect:
            expect(_data_lines(path))
    else:
        rows = _geojson_rows(path, options, expect)
    result = ImportResult()
    with _pipeline() as write:
        for chunk in _chunks(rows, max(1, options.chunk_size)):
            _import_chunk(chunk, checker, builder, write, result, progress)
    result.seconds = time.perf_counter() - started
    return result


def _one_at_a_time(function: Callable[[int], object]) -> Callable[[int], object]:
    lock = threading.Lock()

    def locked(n: int) -> object:
        with lock:
            return function(n)

    return locked


def _import_chunk(
    chunk, checker: _Checker, builder: _Builder, write, result: ImportResult, progress
):
    """Check, geotag and hand a chunk to `write`; `progress` hears of it once it is stored."""
    goods: list[_Good] = []
    for number, row in chunk:
        checked = checker.check(number, row)
        if isinstance(checked, Rejected):
            result.rejected.append(checked)
        else:
            goods.append(checked)
    result.rows += len(chunk)
    present = existing_ids([g.external_id for g in goods]) if goods else set()
    new = [g for g in goods if g.external_id not in present]
    result.unchanged += len(goods) - len(new)
    if not new:
        if progress:
            progress(len(chunk))
        return
    built = builder.build(new)

    def stored() -> None:
        result.add(built)
        if progress:
            progress(len(chunk))

    write(built, stored)


@contextmanager
def _pipeline():
    """A function write(rows, done) that writes a chunk in its own transaction and calls
    done() once it is committed.

    Outside a transaction the chunks are written by writer threads (WRITER_THREADS), each
    with its own database connection, while this thread reads, checks and geotags the next
    chunk: the database works on one chunk while Python builds the next. Inside the caller's
    transaction everything stays on the caller's connection, written in order. Either way
    each chunk commits whole or not at all (chunks may commit out of order, which re-running
    puts right as for a killed run), and leaving the block, also by an exception, waits for
    the chunks being written. After a writer fails no further chunk is written and the
    error is raised here.
    """
    if connection.in_atomic_block:
        writer = _Writer(connection, _Builder.FIELDS)

        def write_here(rows: _Rows, done: Callable[[], object]) -> None:
            writer.write(rows)
            done()

        yield write_here
        return
    writers = _Writers(WRITER_THREADS.get(connection.vendor, 1))
    try:
        yield writers.put
    finally:
        writers.finish()


class _Writers:
    """Threads that write chunks, each with its own database connection."""

    def __init__(self, n: int):
        self.queue: queue.Queue = queue.Queue(maxsize=n)
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, name=f"import-writer-{i}", daemon=True)
            for i in range(n)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        writer = None
        try:
            while (item := self.queue.get()) is not None:
                if self.errors:
                    continue  # after a failure only drain the queue
                rows, done = item
                try:
                    if writer is None:
                        writer = _Writer(connections[DEFAULT_DB_ALIAS], _Builder.FIELDS)
                    writer.write(rows)
                    with self.lock:
                        done()
                except BaseException as error:  # noqa: BLE001 - re-raised by the caller
                    self.errors.append(error)
        finally:
            connections[DEFAULT_DB_ALIAS].close()

    def _raise(self) -> None:
        if self.errors:
            raise self.errors[0]

    def put(self, rows: _Rows, done: Callable[[], object]) -> None:
        self._raise()
        self.queue.put((rows, done))

    def finish(self) -> None:
        for _thread in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        self._raise()
