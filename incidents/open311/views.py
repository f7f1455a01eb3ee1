"""Open311 GeoReport v2 views: JSON or XML chosen by the ``.json``/``.xml`` suffix.

Public data only: GET responses never contain the reporter's name or phone. Service
requests get their id at once, so the spec's tokens are not used: ``tokens/<token>`` always
answers 404. Status is "open" or "closed" (closed = incidents.workflow.FINAL_STATES).
POST needs an ``api_key`` listed in the setting WEIGE_OPEN311_API_KEYS.
"""

import datetime
import hmac
import math
import re
import xml.etree.ElementTree as ET

from django.conf import settings
from django.db.models import Max
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from incidents.models import Category, Incident, Source
from incidents.services.intake import IntakeError, Report, report_incident
from incidents.workflow import FINAL_STATES

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-26T00:00:00+08:00"
DEFAULT_DAYS = 90
MAX_RESULTS = 1000
MAX_ID_DIGITS = 18  # ids are 64-bit integers
TRUE_VALUES = {"1", "true", "yes", "on", "urgent"}


class Open311Error(Exception):
    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = str(description)


# ---------------------------------------------------------------- rendering


# Characters XML 1.0 cannot carry (control characters other than tab and line breaks,
# lone surrogates, U+FFFE/U+FFFF): dropped from XML text so that one report's stray control
# character cannot make the whole feed unreadable. JSON escapes them and keeps them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value) -> str:
    return _NOT_XML.sub("", str(value))


def _xml_value(parent, name, value):
    element = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(element, key, item)
    elif isinstance(value, list):
        item_name = {"endpoints": "endpoint", "formats": "format", "values": "value"}.get(
            name, "item"
        )
        if name == "attributes":
            item_name = "attribute"
        for item in value:
            _xml_value(element, item_name, item)
    elif value is None:
        pass
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = _xml_text(value)
    return element


def render(data, fmt: str, root: str = "", item: str = "", status: int = 200) -> HttpResponse:
    """`data` as JSON, or as XML: a list under <root> with one <item> each, or a dict under
    <root>."""
    if fmt == "json":
        return JsonResponse(
            data,
            status=status,
            safe=False,
            json_dumps_params={"ensure_ascii": False},
            content_type="application/json; charset=utf-8",
        )
    top = ET.Element(root)
    if isinstance(data, list):
        for entry in data:
            element = ET.SubElement(top, item)
            for key, value in entry.items():
                _xml_value(element, key, value)
    else:
        for key, value in data.items():
            _xml_value(top, key, value)
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode").encode()
    )
    return HttpResponse(body, status=status, content_type="text/xml; charset=utf-8")


def error_response(fmt: str, code: int, description) -> HttpResponse:
    data = [{"code": code, "description": str(description)}]
    return render(data, fmt, "errors", "error", status=code)


def open311(view):
    """Turn Open311Error into the spec's error list with its HTTP code."""

    def wrapped(request, *args, fmt, **kwargs):
        try:
            return view(request, *args, fmt=fmt, **kwargs)
        except Open311Error as exc:
            return error_response(fmt, exc.code, exc.description)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _method(request, *allowed):
    if request.method not in allowed:
        raise Open311Error(
            405, _("method %(method)s is not allowed here") % {"method": request.method}
        )


# ---------------------------------------------------------------- discovery and services


@csrf_exempt
@open311
def discovery(request, fmt):
    _method(request, "GET", "HEAD")
    url = request.build_absolute_uri("/open311/v2/")
    data = {
        "changeset": CHANGESET,
        "contact": getattr(settings, "WEIGE_OPEN311_CONTACT", ""),
        "key_service": getattr(settings, "WEIGE_OPEN311_KEY_SERVICE", ""),
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }
    return render(data, fmt, "discovery")


def _service(category: Category) -> dict:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": f"{category.major_name}/{category.name}",
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(filter(None, [category.major_name, category.name])),
        "group": category.major_name,
    }


@csrf_exempt
@open311
def services(request, fmt):
    _method(request, "GET", "HEAD")
    data = [_service(c) for c in Category.objects.active().order_by("code")]
    return render(data, fmt, "services", "service")


URGENT_ATTRIBUTE = {
    "variable": True,
    "code": "urgent",
    "datatype": "singlevaluelist",
    "required": False,
    "datatype_description": "",
    "order": 1,
    "description": "urgent",
    "values": [{"key": "true", "name": "urgent"}, {"key": "false", "name": "normal"}],
}


@csrf_exempt
@open311
def service_definition(request, fmt, code):
    _method(request, "GET", "HEAD")
    category = Category.objects.active_by_code(code)
    if category is None:
        raise Open311Error(404, _("unknown service_code %(code)s") % {"code": code})
    data = {"service_code": category.code, "attributes": [URGENT_ATTRIBUTE]}
    return render(data, fmt, "service_definition")


# ---------------------------------------------------------------- service requests


def _check_api_key(key: str):
    keys = getattr(settings, "WEIGE_OPEN311_API_KEYS", []) or []
    if not key:
        raise Open311Error(403, _("api_key is required"))
    if not any(hmac.compare_digest(key.encode(), str(k).encode()) for k in keys):
        raise Open311Error(403, _("invalid api_key"))


def _coordinate(data, name: str, limit: float) -> float:
    raw = data.get(name, "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(
            400, _("%(name)s must be a number, not %(value)r") % {"name": name, "value": raw}
        ) from None
    if not math.isfinite(value) or abs(value) > limit:
        raise Open311Error(
            400, _("%(name)s=%(value)s is out of range") % {"name": name, "value": raw}
        )
    return value


def _create(request, fmt):
    data = request.POST
    _check_api_key(data.get("api_key", "") or request.GET.get("api_key", ""))
    code = data.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, _("service_code is required"))
    category = Category.objects.active_by_code(code)
    if category is None:
        raise Open311Error(404, _("unknown service_code %(code)s") % {"code": code})
    if not data.get("lat", "").strip() or not data.get("long", "").strip():
        raise Open311Error(400, _("lat/long required"))
    lat = _coordinate(data, "lat", 90)
    lon = _coordinate(data, "long", 180)
    name = " ".join(
        part
        for part in (data.get("last_name", "").strip(), data.get("first_name", "").strip())
        if part
    )
    description = data.get("description", "").strip()
    address = data.get("address_string", "").strip()
    if address:
        description = f"{description}\n{address}" if description else address
    try:
        incident = report_incident(
            Report(
                lon=lon,
                lat=lat,
                category=category,
                source=Source.RESIDENT,
                description=description,
                reporter_name=name[:50],
                reporter_phone=data.get("phone", "").strip()[:20],
                urgent=data.get("attribute[urgent]", "").strip().lower() in TRUE_VALUES,
                media_url=data.get("media_url", "").strip(),
            )
        )
    except IntakeError as exc:
        raise Open311Error(400, str(exc)) from None
    result = [{"service_request_id": str(incident.pk), "service_notice": "", "account_id": None}]
    return render(result, fmt, "service_requests", "request")


def _when(name: str, raw: str) -> datetime.datetime:
    refused = Open311Error(
        400,
        _("%(name)s must be an ISO 8601 date and time, not %(value)r")
        % {"name": name, "value": raw},
    )
    try:  # well-formed but impossible (month 13, 30 February, +99:00) is refused too
        value = parse_datetime(raw.replace(" ", "+")) if "T" in raw else None
        if value is None:
            day = parse_date(raw) if "T" not in raw else None
            if day is None:
                raise refused
            value = datetime.datetime.combine(day, datetime.time())
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        value.astimezone(datetime.UTC)  # an offset beyond what dates can hold
    except (ValueError, OverflowError):
        raise refused from None
    return value


def _iso(value) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def _agency(unit) -> str:
    return f"{unit.name} ({unit.code})" if unit else ""


def _public(incident: Incident) -> dict:
    """The Open311 view of an incident: never the reporter's name or phone."""
    closed = incident.state in FINAL_STATES
    return {
        "service_request_id": str(incident.pk),
        "status": "closed" if closed else "open",
        "status_notes": str(incident.get_state_display()),
        "service_name": incident.category.name,
        "service_code": incident.category.code,
        "description": incident.description,
        "agency_responsible": _agency(incident.grid),
        "service_notice": "",
        "requested_datetime": _iso(incident.reported_at),
        "updated_datetime": _iso(incident.updated or incident.reported_at),
        "expected_datetime": _iso(incident.deadline),
        "address": "",
        "address_id": "",
        "zipcode": "",
        "lat": incident.location.y,
        "long": incident.location.x,
        "media_url": incident.media_url,
    }


def _queryset():
    return Incident.objects.select_related("category", "grid").annotate(updated=Max("timeline__at"))


def _search(request):
    params = request.GET
    queryset = _queryset()
    ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
    if ids:  # the spec: other parameters are then ignored
        if not all(i.isdigit() and len(i) <= MAX_ID_DIGITS for i in ids):
            raise Open311Error(400, _("service_request_id must be numbers separated by commas"))
        return list(queryset.filter(pk__in=[int(i) for i in ids])[:MAX_RESULTS])
    codes = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
    if codes:
        queryset = queryset.filter(category__code__in=codes)
    # the spec: "may be declared multiple times, comma delimited"
    statuses = {v.strip().lower() for v in params.get("status", "").split(",") if v.strip()}
    unknown = statuses - {"open", "closed"}
    if unknown:
        raise Open311Error(
            400,
            _("status must be open or closed, not %(value)r")
            % {"value": ",".join(sorted(unknown))},
        )
    if statuses == {"open"}:
        queryset = queryset.exclude(state__in=FINAL_STATES)
    elif statuses == {"closed"}:
        queryset = queryset.filter(state__in=FINAL_STATES)
    start_raw = params.get("start_date", "").strip()
    end_raw = params.get("end_date", "").strip()
    end = _when("end_date", end_raw) if end_raw else None
    start = _when("start_date", start_raw) if start_raw else None
    if end is None:
        end = max(timezone.now(), start) if start else timezone.now()
    if start is None:
        start = end - datetime.timedelta(days=DEFAULT_DAYS)
    if end < start:
        raise Open311Error(400, _("end_date is before start_date"))
    if end - start > datetime.timedelta(days=DEFAULT_DAYS):  # the spec's limit
        raise Open311Error(
            400,
            _("start_date to end_date spans more than %(days)d days") % {"days": DEFAULT_DAYS},
        )
    queryset = queryset.filter(reported_at__gte=start, reported_at__lte=end)
    return list(queryset.order_by("-reported_at", "-id")[:MAX_RESULTS])


@csrf_exempt
@open311
def requests_view(request, fmt):
    """POST: create a service request (api_key needed); GET: search service requests."""
    _method(request, "GET", "HEAD", "POST")
    if request.method == "POST":
        return _create(request, fmt)
    data = [_public(i) for i in _search(request)]
    return render(data, fmt, "service_requests", "request")


@csrf_exempt
@open311
def request_detail(request, fmt, request_id):
    _method(request, "GET", "HEAD")
    known = request_id.isdigit() and len(request_id) <= MAX_ID_DIGITS
    incident = _queryset().filter(pk=int(request_id)).first() if known else None
    if incident is None:
        raise Open311Error(404, _("service request %(id)s not found") % {"id": request_id})
    return render([_public(incident)], fmt, "service_requests", "request")


@csrf_exempt
@open311
def token(request, fmt, token):
    _method(request, "GET", "HEAD")
    raise Open311Error(
        404,
        _(
            "tokens are not used: service requests get their service_request_id "
            "immediately when posted"
        ),
    )


@csrf_exempt
def not_found(request, path=""):
    """Anything else under /open311/v2/: the spec's error list (XML unless the path ends in
    .json), 404."""
    fmt = "json" if path.endswith(".json") else "xml"
    return error_response(
        fmt, 404, _("%(path)s is not an Open311 GeoReport v2 resource") % {"path": "/" + path}
    )
