"""Import and export problem categories as CSV (one service for the commands, the admin and
the seed migration).

The file has one header row with the model's field names (COLUMNS) and one row per category;
staged_deadlines is JSON text, booleans are true/false, deadlines plain numbers. Rows are
matched by code: new codes are created, known ones updated, identical ones left alone;
categories missing from the file are left as they are (they are never deleted). Row numbers in
messages are spreadsheet rows: the header is row 1, the first category row 2.

Every row is checked before anything is written. The import is one transaction: if any row
has an error nothing is written, unless skip_bad is given, in which case the good rows are
written and the bad ones listed.
"""

import csv
import io
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from incidents.models import (
    STAGE_KEYS,
    TWO_DIGITS_RE,
    Category,
    DeadlineUnit,
    Family,
    category_problems,
    format_decimal,
)

COLUMNS = (
    "code",
    "family",
    "major",
    "major_name",
    "minor",
    "name",
    "responsible_unit_type",
    "deadline_unit",
    "deadline_normal",
    "deadline_urgent",
    "staged_deadlines",
    "police_relevant",
    "duplicate_radius_m",
    "active",
)
REQUIRED = (
    "code",
    "family",
    "major",
    "major_name",
    "minor",
    "name",
    "deadline_unit",
    "deadline_normal",
)
DEFAULT_ENCODING = "utf-8-sig"
SEED_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "categories.csv"

# Spellings accepted in a file edited by hand; exports always write the first (the value).
FAMILY_ALIASES = {
    "component": Family.COMPONENT,
    "部件": Family.COMPONENT,
    "c": Family.COMPONENT,
    "event": Family.EVENT,
    "事件": Family.EVENT,
    "e": Family.EVENT,
}
UNIT_ALIASES = {
    "hours": DeadlineUnit.HOURS,
    "hour": DeadlineUnit.HOURS,
    "工作时": DeadlineUnit.HOURS,
    "小时": DeadlineUnit.HOURS,
    "days": DeadlineUnit.DAYS,
    "day": DeadlineUnit.DAYS,
    "工作日": DeadlineUnit.DAYS,
    "天": DeadlineUnit.DAYS,
}
TRUE_WORDS = {"true", "1", "yes", "y", "是"}
FALSE_WORDS = {"false", "0", "no", "n", "否"}


class CategoryFileError(Exception):
    """The file as a whole cannot be read (encoding, header)."""


@dataclass
class RowError:
    row: int
    code: str
    messages: list[str]

    def __str__(self) -> str:
        where = _("row %(row)d") % {"row": self.row}
        if self.code:
            where += f" ({self.code})"
        return f"{where}: " + "; ".join(self.messages)


@dataclass
class ImportSummary:
    """What an import did, or would do (dry run, or refused because of errors).

    created/updated/unchanged hold codes; changes maps each updated code to the fields that
    changed. written says whether anything was saved.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changes: dict[str, list[str]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "errors": len(self.errors),
        }


def import_categories(
    path_or_file,
    *,
    dry_run: bool = False,
    skip_bad: bool = False,
    encoding: str = DEFAULT_ENCODING,
    model=None,
) -> ImportSummary:
    """Import categories from a CSV path or file object (text, or bytes in `encoding`).

    `model` is the Category model to write (the data migration passes the historical one);
    only the columns that model has are read.
    """
    model = model or Category
    columns = [name for name in COLUMNS if _has_field(model, name)]
    header, records = _read(path_or_file, encoding)
    missing = [name for name in columns if name not in header]
    if missing:
        raise CategoryFileError(
            _("the file lacks the columns %(missing)s (the header must be: %(header)s)")
            % {"missing": ", ".join(missing), "header": ",".join(columns)}
        )
    summary = ImportSummary(dry_run=dry_run)
    extra = [name for name in header if name not in columns]
    if extra:
        summary.warnings.append(
            _("ignored unknown columns: %(columns)s") % {"columns": ", ".join(extra)}
        )

    parsed = []
    first_row: dict[str, int] = {}
    for row, record in records:
        values, messages = parse_row(record, columns, model)
        code = values.get("code") or (record.get("code") or "").strip()
        if code in first_row:
            messages.append(
                _("code %(code)s is already on row %(row)d")
                % {"code": code, "row": first_row[code]}
            )
        elif code:
            first_row[code] = row
        parsed.append((row, code, values, messages))

    existing = {
        category.code: category
        for category in model.objects.filter(code__in=[code for _r, code, _v, _m in parsed])
    }
    to_save = []
    for row, code, values, messages in parsed:
        if not messages:
            instance = existing.get(code) or model()
            changed = [
                name
                for name in columns
                if instance.pk is None or not _same(getattr(instance, name), values[name])
            ]
            for name in columns:
                setattr(instance, name, values[name])
            messages = validate(instance)
        if messages:
            summary.errors.append(RowError(row, code, messages))
        elif instance.pk is None:
            summary.created.append(code)
            to_save.append(instance)
        elif changed:
            summary.updated.append(code)
            summary.changes[code] = changed
            to_save.append(instance)
        else:
            summary.unchanged.append(code)

    summary.written = not dry_run and (skip_bad or not summary.errors)
    if summary.written:
        try:
            with transaction.atomic():
                for instance in to_save:
                    instance.save()
        except IntegrityError as exc:
            raise CategoryFileError(
                _(
                    "nothing was imported: the categories changed while importing (%(error)s); "
                    "run the import again"
                )
                % {"error": exc}
            ) from None
    return summary


def export_categories(path_or_file, queryset=None, *, encoding: str = DEFAULT_ENCODING) -> int:
    """Write categories (default: all) in the import format, ordered by code; returns the
    number of rows. A path is written in `encoding`; a text file object (or an HttpResponse)
    is written as it is."""
    queryset = Category.objects.all() if queryset is None else queryset
    count = 0
    with _open_for_writing(path_or_file, encoding) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for category in queryset.order_by("code"):
            writer.writerow(export_row(category))
            count += 1
    return count


def load_seed(model=None) -> ImportSummary:
    """Load fixtures/categories.csv (the data migration and a fresh install)."""
    summary = import_categories(SEED_PATH, model=model)
    if summary.errors:
        raise CategoryFileError(
            _("the seed file %(path)s has errors: %(errors)s")
            % {"path": SEED_PATH, "errors": "; ".join(str(e) for e in summary.errors)}
        )
    return summary


def export_row(category) -> list[str]:
    stages = category.staged_deadlines
    return [
        category.code,
        category.family,
        category.major,
        category.major_name,
        category.minor,
        category.name,
        category.responsible_unit_type,
        category.deadline_unit,
        format_decimal(category.deadline_normal),
        format_decimal(category.deadline_urgent),
        json.dumps(_canonical_stages(stages), ensure_ascii=False) if stages else "",
        "true" if category.police_relevant else "false",
        str(category.duplicate_radius_m),
        "true" if category.active else "false",
    ]


def parse_row(record: dict, columns, model=None) -> tuple[dict, list[str]]:
    """Turn one CSV record into field values; returns (values, messages)."""
    model = model or Category
    values: dict = {}
    messages: list[str] = []
    cells = {name: (record.get(name) or "").strip() for name in columns}
    for name in columns:
        text = cells[name]
        if not text and name in REQUIRED:
            messages.append(_("%(column)s is required") % {"column": name})
            continue
        try:
            values[name] = _PARSERS.get(name, _text)(text, name, cells, model)
        except ValueError as exc:
            messages.append(f"{name}: {exc}")
    return values, messages


def validate(instance) -> list[str]:
    """Field validators and the cross-field rules, as "column: message" lines."""
    errors: dict[str, list[str]] = {}
    try:
        instance.clean_fields()
    except ValidationError as exc:
        errors = exc.message_dict
    for name, messages in category_problems(instance).items():
        errors.setdefault(name, messages)
    return [f"{name}: {message}" for name, messages in errors.items() for message in messages]


# --- cell parsers: return the value or raise ValueError with the message -------------------


def _text(text, name, cells, model):
    return text


def _code(text, name, cells, model):
    return text.upper()


def _family(text, name, cells, model):
    try:
        return FAMILY_ALIASES[text.lower()].value
    except KeyError:
        raise ValueError(
            _("unknown family “%(value)s”: use component (部件) or event (事件)") % {"value": text}
        ) from None


def _two_digits(text, name, cells, model):
    if not TWO_DIGITS_RE.match(text):
        raise ValueError(
            _(
                "“%(value)s” is not two digits from 01 to 99 (Excel drops leading zeros: "
                "format the column as text)"
            )
            % {"value": text}
        )
    return text


def _unit(text, name, cells, model):
    try:
        return UNIT_ALIASES[text.lower()].value
    except KeyError:
        raise ValueError(
            _("unknown unit “%(value)s”: use hours (working hours) or days (working days)")
            % {"value": text}
        ) from None


def _decimal(text, name, cells, model):
    if not text and name == "deadline_urgent":
        # No separate urgent deadline: urgent cases get the normal one.
        text = cells.get("deadline_normal", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValueError(_("“%(value)s” is not a number") % {"value": text})
    return value


def _stages(text, name, cells, model):
    if not text:
        return []
    try:
        stages = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(_("not valid JSON (%(error)s)") % {"error": exc}) from None
    return _canonical_stages(stages)


def _boolean(text, name, cells, model):
    if not text:
        return model._meta.get_field(name).default
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(_("“%(value)s” is neither true nor false") % {"value": text})


def _integer(text, name, cells, model):
    if not text:
        return model._meta.get_field(name).default
    try:
        return int(text)
    except ValueError:
        raise ValueError(_("“%(value)s” is not a whole number") % {"value": text}) from None


_PARSERS = {
    "code": _code,
    "family": _family,
    "major": _two_digits,
    "minor": _two_digits,
    "deadline_unit": _unit,
    "deadline_normal": _decimal,
    "deadline_urgent": _decimal,
    "staged_deadlines": _stages,
    "police_relevant": _boolean,
    "active": _boolean,
    "duplicate_radius_m": _integer,
}


# --- files ----------------------------------------------------------------------------------


def _canonical_stages(stages):
    """Stage objects with their keys as stage, amount, unit, whatever order the file or the
    database had (PostgreSQL's jsonb reorders keys), so that exports are stable."""
    if not isinstance(stages, list):
        return stages
    return [
        {key: stage[key] for key in STAGE_KEYS}
        if isinstance(stage, dict) and set(stage) == set(STAGE_KEYS)
        else stage
        for stage in stages
    ]


def _has_field(model, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except Exception:
        return False
    return True


def _same(old, new) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        try:
            return Decimal(old) == Decimal(new)
        except (InvalidOperation, TypeError):
            return False
    return old == new


def _read(path_or_file, encoding: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header, [(spreadsheet row number, record)]) with blank rows left out."""
    try:
        if isinstance(path_or_file, str | os.PathLike):
            try:
                with open(path_or_file, encoding=encoding, newline="") as stream:
                    rows = list(csv.reader(stream))
            except FileNotFoundError:
                raise CategoryFileError(
                    _("no such file: %(path)s") % {"path": path_or_file}
                ) from None
        elif isinstance(path_or_file.read(0), bytes):
            stream = io.TextIOWrapper(path_or_file, encoding=encoding, newline="")
            try:
                rows = list(csv.reader(stream))
            finally:
                stream.detach()
        else:
            rows = list(csv.reader(path_or_file))
    except UnicodeDecodeError as exc:
        raise CategoryFileError(
            _(
                "the file is not %(encoding)s text (%(error)s); a CSV saved by Excel on a "
                "Chinese system is usually GBK: try --encoding gbk"
            )
            % {"encoding": encoding, "error": exc}
        ) from None
    except LookupError:
        raise CategoryFileError(
            _("unknown encoding %(encoding)s") % {"encoding": encoding}
        ) from None
    if not rows:
        raise CategoryFileError(_("the file is empty"))
    header = [name.strip().lstrip("\ufeff") for name in rows[0]]
    records = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        records.append((number, dict(zip(header, cells, strict=False))))
    return header, records


@contextmanager
def _open_for_writing(target, encoding: str):
    if isinstance(target, str | os.PathLike):
        with open(target, "w", encoding=encoding, newline="") as stream:
            yield stream
    elif isinstance(target, io.RawIOBase | io.BufferedIOBase):
        stream = io.TextIOWrapper(target, encoding=encoding, newline="")
        try:
            yield stream
        finally:
            stream.flush()
            stream.detach()
    else:
        yield target
