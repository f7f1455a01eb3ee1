import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents.models import Category
from incidents.services.intake import Report, report_incident
from incidents.services.photos import PhotoError, attach_photo

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def incident(small_territory, settings, tmp_path):
    from incidents.categories import load_seed

    settings.MEDIA_ROOT = tmp_path
    if not Category.objects.filter(code="C0101").exists():
        load_seed()
    return report_incident(
        Report(
            lon=104.005,
            lat=30.607,
            category=Category.objects.get(code="C0101"),
            source="patrol",
            reported_at=datetime.datetime(2025, 6, 9, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")),
        )
    )


@pytest.mark.parametrize(
    ("content", "kind"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp")],
)
def test_images_are_stored_through_the_storage_api(incident, content, kind, tmp_path):
    photo = attach_photo(incident, SimpleUploadedFile("现场.bin", content))
    assert photo.content_type == kind and photo.size_bytes == len(content)
    assert (tmp_path / photo.file.name).read_bytes() == content
    assert list(incident.photos.all()) == [photo]


def test_a_file_that_is_not_an_image_is_refused_whatever_its_name(incident):
    with pytest.raises(PhotoError, match="fake.jpg is not a JPEG, PNG or WebP"):
        attach_photo(incident, SimpleUploadedFile("fake.jpg", b"%PDF-1.7 not an image"))
    assert not incident.photos.exists()


def test_oversized_and_empty_photos_are_refused(incident, settings):
    settings.WEIGE_PHOTO_MAX_BYTES = 50
    with pytest.raises(PhotoError, match="at most"):
        attach_photo(incident, SimpleUploadedFile("big.png", PNG))
    with pytest.raises(PhotoError, match="empty"):
        attach_photo(incident, SimpleUploadedFile("empty.png", b""))
