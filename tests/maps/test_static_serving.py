"""Static files as production serves them: collected by collectstatic (which also writes
compressed copies) and sent by WhiteNoise, compressed as the browser accepts."""

import gzip
from pathlib import Path

import brotli
import pytest
from django.core.management import call_command
from django.test import override_settings

import maps

FILES = ["maps/layers.js", "vendor/leaflet-1.9.3/leaflet.js", "weige/site.css"]
STATIC_DIR = Path(maps.__file__).parent / "static"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("collected") / "static"
    with override_settings(STATIC_ROOT=root, DEBUG=False):
        call_command("collectstatic", "--noinput", verbosity=0)
        yield root


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("name", FILES)
def test_text_files_are_sent_compressed_as_accepted(client, collected, name):
    original = (collected / name).read_bytes()
    assert len(original) > 1000

    br = client.get(f"/static/{name}", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert br.status_code == 200
    assert br["Content-Encoding"] == "br"
    assert "Accept-Encoding" in br["Vary"]
    compressed = _body(br)
    assert brotli.decompress(compressed) == original
    assert len(compressed) < len(original) / 2

    gz = client.get(f"/static/{name}", HTTP_ACCEPT_ENCODING="gzip")
    assert gz["Content-Encoding"] == "gzip"
    assert gzip.decompress(_body(gz)) == original

    plain = client.get(f"/static/{name}")
    assert not plain.has_header("Content-Encoding")
    assert _body(plain) == original


def test_collectstatic_writes_the_compressed_copies(collected):
    for name in FILES:
        assert (collected / f"{name}.gz").is_file(), name
        assert (collected / f"{name}.br").is_file(), name


def test_an_unknown_static_path_is_not_found(client, collected, db):
    assert client.get("/static/maps/no-such-file.js").status_code == 404


def test_vendored_assets_are_collected(collected):
    """What the map pages load from /static/vendor/ is all collected (and so compressed)."""
    vendor = STATIC_DIR / "vendor"
    vendored = [p.relative_to(STATIC_DIR) for p in vendor.rglob("*") if p.is_file()]
    assert vendored
    missing = [str(p) for p in vendored if not (collected / p).is_file()]
    assert missing == []
