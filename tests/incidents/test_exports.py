"""CSV helpers: cells, formula guard, BOM, streaming and the header's language."""

import csv
import datetime
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.http import StreamingHttpResponse
from django.utils import translation
from django.utils.translation import gettext_lazy

from incidents.exports import BOM, cell, csv_lines, csv_response


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+86 138", "'+86 138"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("井盖缺失", "井盖缺失"),
        ("", ""),
        (None, ""),
        (True, "1"),
        (False, "0"),
        (-5, -5),
        (2.5, 2.5),
        (Decimal("-1.5"), Decimal("-1.5")),
        (datetime.date(2025, 6, 9), "2025-06-09"),
    ],
)
def test_cell_writes_values_and_neutralises_formulas(value, expected):
    assert cell(value) == expected


def test_aware_times_are_written_in_shanghai_time():
    utc = datetime.datetime(2025, 6, 9, 1, 0, tzinfo=datetime.UTC)
    assert cell(utc) == "2025-06-09T09:00:00+08:00"
    berlin = datetime.datetime(2025, 6, 9, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert cell(berlin) == "2025-06-09T09:00:00+08:00"


def test_csv_lines_start_with_a_bom_and_round_trip_through_a_csv_reader():
    lines = list(csv_lines(["编号", "说明"], [[1, 'a "quoted", text'], [2, "=cmd"]]))
    assert lines[0].startswith(BOM) and lines[0].count(BOM) == 1
    rows = list(csv.reader(io.StringIO("".join(lines).removeprefix(BOM))))
    assert rows == [["编号", "说明"], ["1", 'a "quoted", text'], ["2", "'=cmd"]]


def test_csv_response_streams_rows_as_they_are_read():
    read = []

    def rows():
        for n in range(3):
            read.append(n)
            yield [n]

    response = csv_response("t.csv", ["n"], rows())
    assert isinstance(response, StreamingHttpResponse)
    assert read == []  # nothing read before the response is sent
    body = b"".join(response.streaming_content)
    assert body.startswith(BOM.encode("utf-8"))
    assert body.decode("utf-8") == BOM + "n\r\n0\r\n1\r\n2\r\n"
    assert response["Content-Disposition"] == 'attachment; filename="t.csv"'


def test_csv_response_keeps_the_language_active_when_it_was_made():
    label = gettext_lazy("reported at")
    with translation.override("zh-hans"):
        response = csv_response("t.csv", [label], iter([[label]]))
    with translation.override("en"):
        body = b"".join(response.streaming_content).decode("utf-8")
    assert body == BOM + "上报时间\r\n上报时间\r\n"
