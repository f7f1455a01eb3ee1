"""Photos of incidents: the type is read from the file's first bytes (not its name or the
browser's claim), the size is limited by WEIGE_PHOTO_MAX_BYTES, and the file is stored
through Django's storage API (local media by default; any storage backend in production)."""

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from incidents.models import Incident, IncidentPhoto

SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
)


class PhotoError(ValueError):
    """A photo that is refused; the message says which file and why."""


def photo_type(head: bytes) -> tuple[str, str] | None:
    """(content type, extension) from a file's first bytes, or None."""
    for signature, content_type, extension in SIGNATURES:
        if head.startswith(signature):
            return content_type, extension
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", ".webp"
    return None


def check_photo(upload) -> tuple[str, str]:
    """Refuse anything but a JPEG, PNG or WebP within the size limit."""
    name = getattr(upload, "name", "") or _("(unnamed)")
    limit = settings.WEIGE_PHOTO_MAX_BYTES
    if upload.size > limit:
        raise PhotoError(
            _("%(name)s is %(size).1f MB; photos may be at most %(limit).1f MB")
            % {"name": name, "size": upload.size / 2**20, "limit": limit / 2**20}
        )
    if upload.size == 0:
        raise PhotoError(_("%(name)s is empty") % {"name": name})
    upload.seek(0)
    found = photo_type(upload.read(16))
    upload.seek(0)
    if found is None:
        raise PhotoError(_("%(name)s is not a JPEG, PNG or WebP image") % {"name": name})
    return found


@transaction.atomic
def attach_photo(incident: Incident, upload, user=None) -> IncidentPhoto:
    content_type, extension = check_photo(upload)
    photo = IncidentPhoto(
        incident=incident,
        content_type=content_type,
        size_bytes=upload.size,
        uploaded_by=user if getattr(user, "is_authenticated", False) else None,
    )
    photo.file.save(f"incident-{incident.pk}{extension}", upload, save=False)
    photo.save()
    return photo
