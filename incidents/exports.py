"""CSV downloads that open correctly in Excel, and the incident list's columns.

`csv_response(filename, header, rows)` streams any table: rows are written as they are read
(pass a queryset's ``.iterator()`` so that a large export never sits in memory), the file
starts with a UTF-8 byte-order mark (without it Excel reads UTF-8 as GBK and Chinese turns
into mojibake), and every cell goes through `cell`:

- datetimes become ISO 8601 in Asia/Shanghai (the site's TIME_ZONE), e.g.
  ``2025-06-09T09:00:00+08:00``; dates ISO; booleans "1"/"0"; None an empty cell;
- text that Excel would run as a formula (a cell starting with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return — "CSV injection") gets a leading apostrophe, which Excel shows as
  plain text. Numbers (int, float, Decimal) are written as numbers: a negative number is not
  a formula.

The header and any translated cell are produced in the language active when the response
is created (the user's), even though the rows are written later while the response streams.

`INCIDENT_COLUMNS` / `incident_csv` are the columns of the incident list export.
"""

import csv
import datetime
from collections.abc import Callable, Iterable
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str | int | float:
    """One value as a CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = value.astimezone(ZoneInfo(settings.TIME_ZONE))
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() hands the line back to the csv writer's caller."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable, rows: Iterable[Iterable]) -> Iterable[str]:
    """The CSV text of `header` and `rows`, line by line, BOM first."""
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow([cell(h) for h in header])
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def csv_response(filename: str, header: Iterable, rows: Iterable[Iterable]):
    """A streamed CSV download (StreamingHttpResponse) of `header` and `rows`."""
    language = translation.get_language()
    header = [str(h) for h in header]  # translated now, in the user's language

    def stream():
        with translation.override(language):
            yield from csv_lines(header, rows)

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _name(unit) -> str:
    return unit.name if unit else ""


# (header, value of one incident). The incident comes from incidents.selectors (category and
# units already joined): no column may cost a query per row.
INCIDENT_COLUMNS: list[tuple[str, Callable]] = [
    (_("number"), lambda i: i.pk),
    (_("category code"), lambda i: i.category.code),
    (_("major class name"), lambda i: i.category.major_name),
    (_("category"), lambda i: i.category.name),
    (_("state"), lambda i: i.get_state_display()),
    (_("reported at"), lambda i: i.reported_at),
    (_("deadline"), lambda i: i.deadline),
    (_("overdue"), lambda i: i.is_overdue),
    (_("3× overdue"), lambda i: i.is_3x_overdue),
    (_("street/town"), lambda i: _name(i.street)),
    (_("community/village"), lambda i: _name(i.community)),
    (_("grid"), lambda i: _name(i.grid)),
    (_("micro-grid"), lambda i: _name(i.unit)),
    (_("source"), lambda i: i.get_source_display()),
    (_("reporter phone"), lambda i: i.masked_phone),
    (_("near a boundary"), lambda i: i.near_boundary),
    (_("unassigned"), lambda i: i.unassigned),
    (_("urgent"), lambda i: i.urgent),
    (_("closed at"), lambda i: i.closed_at),
    (_("description"), lambda i: i.description),
]


def incident_csv(incidents, filename: str = "incidents.csv"):
    """All of `incidents` (a queryset, read in chunks) as a CSV download; phones masked."""
    rows = (
        [value(incident) for _header, value in INCIDENT_COLUMNS]
        for incident in incidents.iterator(chunk_size=2000)
    )
    return csv_response(filename, [header for header, _value in INCIDENT_COLUMNS], rows)
