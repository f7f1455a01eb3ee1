"""gis.middleware.CompressionMiddleware: text compressed, compressed media sent as they are."""

import gzip

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from gis.middleware import CompressionMiddleware

BODY = b"<svg>" + b"weige " * 200 + b"</svg>"


def answer(response):
    request = RequestFactory().get("/", HTTP_ACCEPT_ENCODING="gzip, br")
    return CompressionMiddleware(lambda _request: response)(request)


@pytest.mark.parametrize(
    "kind", ["text/html; charset=utf-8", "application/geo+json", "image/svg+xml"]
)
def test_text_is_gzip_compressed(kind):
    response = answer(HttpResponse(BODY, content_type=kind))
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.content) == BODY


@pytest.mark.parametrize("kind", ["image/jpeg", "image/png", "application/zip", "video/mp4"])
def test_compressed_media_go_as_they_are(kind):
    response = answer(HttpResponse(BODY, content_type=kind))
    assert not response.has_header("Content-Encoding")
    assert response.content == BODY


def test_a_streamed_csv_is_compressed_as_it_streams():
    response = answer(StreamingHttpResponse(iter([b"a,b\n"] * 500), content_type="text/csv"))
    assert response["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(response.streaming_content)) == b"a,b\n" * 500
