"""Incident photos, served only to users who may see the incident.

Photos are stored through Django's storage API but never served from MEDIA_URL: a photo of a
problem in someone's courtyard is as private as the incident itself.
"""

import mimetypes

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404

from incidents.models import IncidentPhoto, TimelineEntry
from incidents.selectors import incidents_for


def _serve(field, content_type: str | None = None) -> FileResponse:
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("photo file missing") from None
    kind = content_type or mimetypes.guess_type(field.name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=kind)
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
def incident_photo(request, pk: int, photo_id: int):
    incident = get_object_or_404(incidents_for(request.user), pk=pk)
    photo = get_object_or_404(IncidentPhoto, pk=photo_id, incident=incident)
    return _serve(photo.file, photo.content_type)


@login_required
def timeline_photo(request, pk: int, entry_id: int):
    incident = get_object_or_404(incidents_for(request.user), pk=pk)
    entry = get_object_or_404(TimelineEntry, pk=entry_id, incident=incident)
    if not entry.photo:
        raise Http404("no photo")
    return _serve(entry.photo)
