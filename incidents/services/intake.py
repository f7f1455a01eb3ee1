"""Taking an incident in: convert its coordinates, geotag it, give it its deadline, record it.

The incident and its first timeline entry are written in one transaction. Bad input raises
IntakeError with a message saying which field is wrong and why.
"""

import datetime
import math
from dataclasses import dataclass

from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django.utils.translation import gettext as _

from gis import crs as crs_tools
from incidents.geotagging import geotag_point
from incidents.models import (
    MAX_DESCRIPTION,
    MAX_MEDIA_URL,
    Category,
    Incident,
    Source,
    TimelineEntry,
)
from incidents.workflow import State
from incidents.working_time import WorkingCalendar, compute_deadline, three_times_overdue_at


class IntakeError(ValueError):
    """A report that cannot be taken in; the message names the field."""


@dataclass
class Report:
    lon: float
    lat: float
    category: Category
    source: str
    crs: str = "wgs84"
    description: str = ""
    reporter_name: str = ""
    reporter_phone: str = ""
    urgent: bool = False
    reported_at: datetime.datetime | None = None
    external_id: str | None = None
    media_url: str = ""  # a picture published elsewhere (http or https)


def _check_media_url(url: str) -> None:
    if not url:
        return
    if len(url) > MAX_MEDIA_URL:
        raise IntakeError(_("media_url is longer than %(n)d characters") % {"n": MAX_MEDIA_URL})
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise IntakeError(
            _("media_url must be an http or https address, not %(url)r") % {"url": url[:100]}
        ) from None


def _coordinates(report: Report) -> tuple[float, float]:
    for name, value, limit in (("lon", report.lon, 180), ("lat", report.lat, 90)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise IntakeError(
                _("%(name)s must be a finite number, not %(value)r")
                % {"name": name, "value": value}
            )
        if abs(value) > limit:
            raise IntakeError(
                _("%(name)s=%(value)s is out of range -%(limit)d..%(limit)d")
                % {"name": name, "value": value, "limit": limit}
            )
    if report.crs not in crs_tools.SUPPORTED:
        raise IntakeError(
            _("crs %(crs)r is not one of %(known)s")
            % {"crs": report.crs, "known": ", ".join(crs_tools.SUPPORTED)}
        )
    lon, lat = crs_tools.to_wgs84(report.lon, report.lat, report.crs)
    return float(lon), float(lat)


def deadline_for(
    category: Category,
    start: datetime.datetime,
    urgent: bool,
    calendar: WorkingCalendar | None = None,
):
    calendar = calendar or WorkingCalendar.from_settings()
    amount, unit = deadline_amount(category, urgent, calendar)
    return compute_deadline(calendar, start, amount, unit)


def deadline_amount(category: Category, urgent: bool, calendar: WorkingCalendar):
    """The category's working time allowed, as (amount, "hours" or "days")."""
    amount = float(category.deadline_urgent if urgent else category.deadline_normal)
    unit = category.deadline_unit
    if unit == "days" and not amount.is_integer():
        # Half a working day (e.g. urgent 暴露垃圾) is that share of a working day's hours.
        return amount * calendar.hours_per_day, "hours"
    return amount, unit


def deadline_fields(deadline, start: datetime.datetime, calendar: WorkingCalendar) -> dict:
    """The incident fields that follow from a Deadline counted from `start`."""
    return {
        "deadline": deadline.due,
        "deadline_note": deadline.warning(),
        "overdue_3x_at": three_times_overdue_at(start, deadline.due, calendar),
    }


def report_incident(report: Report, *, user=None) -> Incident:
    """Create an incident from a report (see the module docstring)."""
    if report.source not in Source.values:
        raise IntakeError(
            _("source %(source)r is not one of %(known)s")
            % {"source": report.source, "known": ", ".join(Source.values)}
        )
    if not report.category.active:
        raise IntakeError(
            _("category %(code)s is no longer in use") % {"code": report.category.code}
        )
    if len(report.description) > MAX_DESCRIPTION:
        raise IntakeError(_("description is longer than %(n)d characters") % {"n": MAX_DESCRIPTION})
    _check_media_url(report.media_url)
    lon, lat = _coordinates(report)
    reported_at = report.reported_at or timezone.now()
    if timezone.is_naive(reported_at):
        raise IntakeError(_("reported_at must carry a time zone"))
    local_day = timezone.localtime(reported_at).date()
    tag = geotag_point(lon, lat, local_day)
    calendar = WorkingCalendar.from_settings()
    deadline = deadline_for(report.category, reported_at, report.urgent, calendar)
    incident = Incident(
        location=Point(lon, lat, srid=4326),
        input_crs=report.crs,
        input_lon=report.lon,
        input_lat=report.lat,
        category=report.category,
        description=report.description,
        source=report.source,
        reporter_name=report.reporter_name,
        reporter_phone=report.reporter_phone,
        urgent=report.urgent,
        media_url=report.media_url,
        reported_at=reported_at,
        external_id=report.external_id or None,
        state=State.REPORTED,
        **tag.incident_fields(),
        **deadline_fields(deadline, reported_at, calendar),
    )
    entry = TimelineEntry(
        actor=user if getattr(user, "is_authenticated", False) else None,
        action="report",
        to_state=State.REPORTED,
        data={"unassigned": tag.unassigned, "near_boundary": tag.near_boundary},
    )
    # Only the writes run in the transaction: on SpatiaLite it holds the database's write lock
    # from its first statement (BEGIN IMMEDIATE), so the lookups above stay outside it.
    try:
        if connection.vendor == "postgresql":
            if connection.in_atomic_block:
                with transaction.atomic():  # a savepoint: a refused insert spares the caller
                    _insert_both(incident, entry)
            else:
                _insert_both(incident, entry)
        else:
            with transaction.atomic():
                incident.save()
                entry.incident = incident
                entry.save()
    except IntegrityError:
        incident.pk = None
        if report.external_id and Incident.objects.filter(external_id=report.external_id).exists():
            raise IntakeError(
                _("an incident with external id %(id)s already exists") % {"id": report.external_id}
            ) from None
        raise
    return incident


def _insert_both(incident: Incident, entry: TimelineEntry) -> None:
    """PostgreSQL: insert the incident and its first timeline entry in one statement (a
    data-modifying WITH), which is atomic by itself: one round trip to the server instead of
    BEGIN, two INSERTs and COMMIT. The incident's INSERT is the one the ORM writes for
    incident.save(); the entry's columns are adapted by their fields as the ORM adapts them."""
    meta = Incident._meta
    query = InsertQuery(Incident)
    query.insert_values(
        [f for f in meta.local_concrete_fields if f is not meta.auto_field], [incident]
    )
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk]
    ((incident_sql, incident_params),) = compiler.as_sql()
    quote = connection.ops.quote_name
    entry_meta = TimelineEntry._meta
    columns, values, params = [], [], []
    for f in entry_meta.local_concrete_fields:
        if f is entry_meta.auto_field:
            continue
        columns.append(quote(f.column))
        if f.attname == "incident_id":
            values.append("new.id")
        else:
            values.append("%s")
            params.append(f.get_db_prep_save(f.pre_save(entry, True), connection))
    sql = (
        f"WITH new AS ({incident_sql}) INSERT INTO {quote(entry_meta.db_table)} "
        f"({', '.join(columns)}) SELECT {', '.join(values)} FROM new "
        f"RETURNING {quote(entry_meta.get_field('incident').column)}, {quote(entry_meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*incident_params, *params])
        incident.pk, entry.pk = cursor.fetchone()
    for obj in (incident, entry):
        obj._state.adding = False
        obj._state.db = connection.alias
    entry.incident = incident
