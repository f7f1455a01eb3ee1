"""Problem categories (DOMAIN.md §3): data, not code.

Categories follow the GB/T 30428.2 layout that every city extends: a family (部件 component or
事件 event), a 2-digit 大类 (major class) and a 2-digit 小类 (minor class) inside it. They are
seeded from fixtures/categories.csv, edited in the admin and imported/exported as CSV
(incidents.categories); they are never deleted, only deactivated.
"""

import re
from decimal import Decimal

from django.conf import settings
from django.contrib.gis.db import models as gis_models
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import connections, models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from incidents.workflow import FINAL_STATES, State


class Family(models.TextChoices):
    COMPONENT = "component", _("component")  # 部件: a facility on the street
    EVENT = "event", _("event")  # 事件: something that happens


# The first letter of a category code, per family.
FAMILY_LETTERS = {Family.COMPONENT: "C", Family.EVENT: "E"}


class DeadlineUnit(models.TextChoices):
    """Deadlines count working time (weekends, public holidays and 调休 workdays matter)."""

    HOURS = "hours", _("working hours")
    DAYS = "days", _("working days")


# Used only to put staged deadlines of mixed units in order ("4 working hours" comes before
# "7 working days"); deadlines themselves are computed by the working-time calendar.
HOURS_PER_WORKING_DAY = 8

CODE_RE = re.compile(r"^[CE]\d{4}$")
TWO_DIGITS_RE = re.compile(r"^(0[1-9]|[1-9]\d)$")
STAGE_KEYS = ("stage", "amount", "unit")

code_validator = RegexValidator(
    CODE_RE,
    _("the code is C (component) or E (event) followed by four digits, e.g. C0101"),
)
two_digits_validator = RegexValidator(
    TWO_DIGITS_RE, _("use two digits from 01 to 99 (format the column as text in Excel)")
)
positive_deadline = MinValueValidator(Decimal("0.01"), _("a deadline must be positive"))
positive_radius = MinValueValidator(1, _("the radius must be at least 1 metre"))


class CategoryDeletionRefused(Exception):
    """Incidents refer to categories: they are deactivated, never deleted."""


class CategoryQuerySet(models.QuerySet):
    def active(self) -> "CategoryQuerySet":
        return self.filter(active=True)

    def active_by_code(self, code: str) -> "Category | None":
        """The active category with this code, or None. One indexed query written out, so
        that intake (one lookup per report) does not compile a queryset each time."""
        table = connections[self.db].ops.quote_name(self.model._meta.db_table)
        found = self.raw(f"SELECT * FROM {table} WHERE code = %s AND active = %s", [code, True])
        return next(iter(found), None)

    def delete(self):
        raise CategoryDeletionRefused(gettext("categories are never deleted; deactivate them"))


class Category(models.Model):
    """One problem category (小类) with its handling rules.

    The code is the family letter, the 大类 and the 小类: ``C`` + ``01`` + ``01`` = "C0101"
    (component 01 公用设施 / 01 井盖), ``E`` + ``05`` + ``01`` = "E0501" (event 05 街面秩序 /
    01 无照经营游商). The code is the category's identity in CSV files and APIs; clean()
    checks that it agrees with family, major and minor.

    Deadlines are in working hours or working days (``deadline_unit``); the urgent deadline
    is never longer than the normal one. ``staged_deadlines`` lists optional stages, each
    counted from acceptance in working time and each later than the one before, e.g. illegal
    construction: 停工 within 4 working hours, 处罚 within 7 working days, 拆除 within 20::

        [{"stage": "停工", "amount": 4, "unit": "hours"},
         {"stage": "处罚", "amount": 7, "unit": "days"},
         {"stage": "拆除", "amount": 20, "unit": "days"}]
    """

    code = models.CharField(_("code"), max_length=8, unique=True, validators=[code_validator])
    family = models.CharField(_("family"), max_length=16, choices=Family.choices)
    major = models.CharField(_("major class"), max_length=2, validators=[two_digits_validator])
    major_name = models.CharField(_("major class name"), max_length=50)
    minor = models.CharField(_("minor class"), max_length=2, validators=[two_digits_validator])
    name = models.CharField(_("name"), max_length=100)
    responsible_unit_type = models.CharField(
        _("responsible unit type"),
        max_length=100,
        blank=True,
        help_text=_("free text, e.g. 市政, 城管, 住建, 公安, 社区"),
    )
    deadline_unit = models.CharField(
        _("deadline unit"), max_length=8, choices=DeadlineUnit.choices, default=DeadlineUnit.DAYS
    )
    deadline_normal = models.DecimalField(
        _("normal deadline"), max_digits=6, decimal_places=2, validators=[positive_deadline]
    )
    deadline_urgent = models.DecimalField(
        _("urgent deadline"),
        max_digits=6,
        decimal_places=2,
        validators=[positive_deadline],
        help_text=_("not longer than the normal deadline"),
    )
    staged_deadlines = models.JSONField(
        _("staged deadlines"),
        default=list,
        blank=True,
        help_text=_(
            'a list such as [{"stage": "停工", "amount": 4, "unit": "hours"}], '
            "each stage later than the one before"
        ),
    )
    police_relevant = models.BooleanField(_("police relevant"), default=False)
    duplicate_radius_m = models.PositiveIntegerField(
        _("duplicate search radius (m)"), default=50, validators=[positive_radius]
    )
    active = models.BooleanField(_("active"), default=True)

    objects = CategoryQuerySet.as_manager()

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deadline_urgent__lte=F("deadline_normal")),
                name="category_urgent_not_after_normal",
                violation_error_message=_(
                    "the urgent deadline cannot be longer than the normal deadline"
                ),
            ),
            models.CheckConstraint(
                condition=Q(deadline_urgent__gt=0) & Q(deadline_normal__gt=0),
                name="category_deadlines_positive",
                violation_error_message=_("a deadline must be positive"),
            ),
            models.CheckConstraint(
                condition=Q(duplicate_radius_m__gte=1),
                name="category_radius_positive",
                violation_error_message=_("the radius must be at least 1 metre"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.major_name}/{self.name}"

    def clean(self):
        problems = category_problems(self)
        if problems:
            raise ValidationError(problems)

    def delete(self, *args, **kwargs):
        raise CategoryDeletionRefused(gettext("categories are never deleted; deactivate them"))

    def deadline(self, urgent: bool = False) -> tuple[Decimal, str]:
        """(amount, unit) of the normal or urgent deadline."""
        return (self.deadline_urgent if urgent else self.deadline_normal, self.deadline_unit)


def expected_code(family: str, major: str, minor: str) -> str | None:
    letter = FAMILY_LETTERS.get(family)
    if (
        letter is None
        or not TWO_DIGITS_RE.match(major or "")
        or not TWO_DIGITS_RE.match(minor or "")
    ):
        return None
    return f"{letter}{major}{minor}"


def category_problems(category) -> dict[str, list[str]]:
    """The rules that involve several fields, as {field: [message]}.

    A plain function so that the CSV import can apply it to the historical model inside a
    data migration as well (historical models have no custom methods).
    """
    problems: dict[str, list[str]] = {}
    expected = expected_code(category.family, category.major, category.minor)
    if expected and CODE_RE.match(category.code or "") and category.code != expected:
        problems.setdefault("code", []).append(
            gettext(
                "the code %(code)s does not match family %(family)s, major class %(major)s "
                "and minor class %(minor)s: it should be %(expected)s"
            )
            % {
                "code": category.code,
                "family": category.family,
                "major": category.major,
                "minor": category.minor,
                "expected": expected,
            }
        )
    normal, urgent = category.deadline_normal, category.deadline_urgent
    if isinstance(normal, Decimal | int) and isinstance(urgent, Decimal | int) and urgent > normal:
        problems.setdefault("deadline_urgent", []).append(
            gettext(
                "the urgent deadline (%(urgent)s) cannot be longer than the normal deadline "
                "(%(normal)s)"
            )
            % {"urgent": format_decimal(urgent), "normal": format_decimal(normal)}
        )
    stage_problems = staged_deadline_problems(category.staged_deadlines)
    if stage_problems:
        problems["staged_deadlines"] = stage_problems
    return problems


def staged_deadline_problems(stages) -> list[str]:
    """What is wrong with a staged_deadlines value (empty list: nothing)."""
    if stages in (None, ""):
        return []
    if not isinstance(stages, list):
        return [gettext('staged deadlines must be a list of {"stage", "amount", "unit"} objects')]
    problems = []
    units = ", ".join(DeadlineUnit.values)
    previous = None  # (working hours, stage number, stage) of the last valid stage
    names = set()
    for number, stage in enumerate(stages, start=1):
        if not isinstance(stage, dict):
            problems.append(
                gettext('stage %(n)d must be an object {"stage", "amount", "unit"}') % {"n": number}
            )
            continue
        if set(stage) != set(STAGE_KEYS):
            problems.append(
                gettext(
                    "stage %(n)d must have exactly the keys stage, amount and unit, not %(keys)s"
                )
                % {"n": number, "keys": ", ".join(sorted(stage))}
            )
            continue
        label, amount, unit = stage["stage"], stage["amount"], stage["unit"]
        valid = True
        if not isinstance(label, str) or not label.strip():
            problems.append(gettext("stage %(n)d needs a name") % {"n": number})
            valid = False
        elif label in names:
            problems.append(
                gettext("stage %(n)d: the name %(stage)s is used twice")
                % {"n": number, "stage": label}
            )
            valid = False
        else:
            names.add(label)
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            problems.append(
                gettext("stage %(n)d (%(stage)s): the amount must be a positive number")
                % {"n": number, "stage": label}
            )
            valid = False
        if unit not in DeadlineUnit.values:
            problems.append(
                gettext("stage %(n)d (%(stage)s): unknown unit %(unit)s, use %(units)s")
                % {"n": number, "stage": label, "unit": unit, "units": units}
            )
            valid = False
        if not valid:
            continue
        hours = amount * (HOURS_PER_WORKING_DAY if unit == DeadlineUnit.DAYS else 1)
        if previous is not None and hours <= previous[0]:
            problems.append(
                gettext(
                    "stage %(n)d (%(stage)s) must come later than stage %(m)d (%(previous)s): "
                    "stages are in increasing working time"
                )
                % {"n": number, "stage": label, "m": previous[1], "previous": previous[2]}
            )
        previous = (hours, number, label)
    return problems


def format_decimal(value) -> str:
    """2.00 → "2", 0.50 → "0.5": how deadlines are written in messages and CSV files."""
    if isinstance(value, int):
        return str(value)
    return format(value.normalize(), "f")


# The longest description intake takes (the Open311 limit; a page and a CSV cell still hold it).
MAX_DESCRIPTION = 4000
MAX_MEDIA_URL = 500


def mask_phone(phone: str) -> str:
    """A phone number as lists show it, at least four digits hidden: 13812345678 →
    138****5678 (a mobile, or a landline with its area code), 87654321 → ****4321 (a local
    number: the last four only), anything shorter than 8 characters wholly hidden."""
    digits = phone.strip()
    n = len(digits)
    if n >= 11:
        return f"{digits[:3]}{'*' * (n - 7)}{digits[-4:]}"
    if n >= 8:
        return f"{'*' * (n - 4)}{digits[-4:]}"
    return "*" * n


class Source(models.TextChoices):
    PATROL = "patrol", _("grid patrol")
    RESIDENT = "resident", _("resident")
    POLICE = "police", _("police")
    HOTLINE = "hotline_12345", _("12345 hotline")
    IMPORT = "import", _("import")


class InputCRS(models.TextChoices):
    WGS84 = "wgs84", "WGS 84"
    CGCS2000 = "cgcs2000", "CGCS2000"
    GCJ02 = "gcj02", "GCJ-02"
    BD09 = "bd09", "BD-09"


class IncidentQuerySet(gis_models.QuerySet):
    def delete(self):
        raise IncidentDeletionRefused(gettext("incidents are never deleted; void them"))


class IncidentDeletionRefused(Exception):
    """Incidents are voided, never deleted."""


class Incident(gis_models.Model):
    """A reported problem at a point, geotagged into the territory and taken through the
    closed loop (incidents.workflow). Never deleted, only voided."""

    location = gis_models.PointField(_("location"), srid=4326)
    input_crs = models.CharField(
        _("coordinate system reported in"),
        max_length=10,
        choices=InputCRS.choices,
        default=InputCRS.WGS84,
    )
    input_lon = models.FloatField(_("longitude as reported"))
    input_lat = models.FloatField(_("latitude as reported"))
    category = models.ForeignKey(
        Category, verbose_name=_("category"), on_delete=models.PROTECT, related_name="incidents"
    )
    description = models.TextField(_("description"), blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    reporter_name = models.CharField(_("reporter"), max_length=50, blank=True)
    reporter_phone = models.CharField(_("reporter phone"), max_length=20, blank=True)
    urgent = models.BooleanField(_("urgent"), default=False)
    # A link to a picture the reporter published elsewhere (Open311's media_url); uploaded
    # photos are IncidentPhoto rows.
    media_url = models.URLField(
        _("media link"), max_length=MAX_MEDIA_URL, blank=True, default="", db_default=""
    )
    reported_at = models.DateTimeField(_("reported at"), db_index=True)
    # NULL, not "", when absent: the unique constraint applies to ids that exist.
    external_id = models.CharField(  # noqa: DJ001
        _("external id"), max_length=64, null=True, blank=True
    )
    state = models.CharField(
        _("state"), max_length=24, choices=State.choices, default=State.REPORTED
    )
    street = models.ForeignKey(
        "grids.Unit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("street/town"),
    )
    community = models.ForeignKey(
        "grids.Unit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("community/village"),
    )
    grid = models.ForeignKey(
        "grids.Unit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("grid"),
    )
    unit = models.ForeignKey(
        "grids.Unit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="incidents",
        verbose_name=_("micro-grid"),
    )
    # Not indexed: no page looks incidents up by version, and versions are not deleted.
    boundary_version = models.ForeignKey(
        "grids.BoundaryVersion",
        null=True,
        blank=True,
        db_index=False,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("boundary version used"),
    )
    unassigned = models.BooleanField(_("unassigned"), default=False)
    near_boundary = models.BooleanField(_("near a boundary"), default=False)
    boundary_candidates = models.JSONField(_("boundary candidates"), default=list, blank=True)
    deadline = models.DateTimeField(_("deadline"), null=True, blank=True, db_index=True)
    deadline_note = models.CharField(_("deadline note"), max_length=200, blank=True)
    # When three times the allowed working time will have passed (incidents.working_time):
    # "3× overdue" is then a comparison with now, usable in queries.
    overdue_3x_at = models.DateTimeField(
        _("three times overdue from"), null=True, blank=True, db_index=True
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        db_index=False,  # a partial index in Meta: few incidents are duplicates
        on_delete=models.PROTECT,
        related_name="duplicates",
        verbose_name=_("duplicate of"),
    )
    # Bumped by every transition; a transition made against a stale value loses.
    lock_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["-reported_at", "-id"]
        # Plain btree indexes only where lists filter; the flags and duplicate links are
        # indexed for the few rows that have them, so a bulk import feeds fewer indexes.
        indexes = [
            models.Index(fields=["state"], name="incident_state"),
            models.Index(
                fields=["-reported_at"],
                condition=Q(unassigned=True),
                name="incident_unassigned",
            ),
            models.Index(
                fields=["-reported_at"],
                condition=Q(near_boundary=True),
                name="incident_near_boundary",
            ),
            models.Index(
                fields=["duplicate_of"],
                condition=Q(duplicate_of__isnull=False),
                name="incident_duplicate_of",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=Q(external_id__isnull=False),
                name="incident_external_id_once",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.category.name}"

    def delete(self, *args, **kwargs):
        raise IncidentDeletionRefused(gettext("incidents are never deleted; void them"))

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.reporter_phone)

    @property
    def is_open(self) -> bool:
        return self.state not in FINAL_STATES

    @property
    def is_overdue(self) -> bool:
        """Open and past its deadline."""
        return bool(self.is_open and self.deadline and timezone.now() > self.deadline)

    @property
    def is_3x_overdue(self) -> bool:
        """Open and three times the allowed working time has passed."""
        return bool(self.is_open and self.overdue_3x_at and timezone.now() >= self.overdue_3x_at)


class TimelineEntry(models.Model):
    """One append-only line of an incident's history: who, when, from, to, note, photo."""

    incident = models.ForeignKey(
        Incident,
        on_delete=models.PROTECT,
        related_name="timeline",
        verbose_name=_("incident"),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("by"),
    )
    action = models.CharField(_("action"), max_length=32)
    from_state = models.CharField(_("from"), max_length=24, blank=True)
    to_state = models.CharField(_("to"), max_length=24, blank=True)
    note = models.TextField(_("note"), blank=True)
    photo = models.FileField(_("photo"), upload_to="incidents/%Y/%m/", blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("timeline entry")
        verbose_name_plural = _("timeline")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"#{self.incident_id} {self.action} {self.from_state}→{self.to_state}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise IncidentDeletionRefused(gettext("timeline entries cannot be changed"))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise IncidentDeletionRefused(gettext("timeline entries cannot be deleted"))


class DispatchTarget(models.TextChoices):
    GRID_CHIEF = "grid_chief", _("the grid's chief")
    GRID_MEMBERS = "grid_members", _("the grid's members")
    COMMUNITY_POLICE = "community_police", _("the community police")
    DEPARTMENT = "department", _("a department")


class DispatchRule(models.Model):
    """One routing rule: who gets a new incident (DOMAIN.md §4, 派遣).

    Rules are tried in ``order`` (then id); the first active rule whose conditions all hold
    wins (incidents.services.dispatch). Every condition is optional, empty means "any":
    ``category``, ``major`` (the 2-digit 大类), ``unit`` (the incident lies in this unit or
    below it) and ``police_relevant`` (must equal the category's flag). The dispatch
    transition's timeline entry records which rule matched.
    """

    order = models.IntegerField(_("order"), default=100, help_text=_("lower comes first"))
    name = models.CharField(_("name"), max_length=100)
    active = models.BooleanField(_("active"), default=True)
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dispatch_rules",
        verbose_name=_("category"),
        help_text=_("empty: any category"),
    )
    major = models.CharField(
        _("major class"),
        max_length=2,
        blank=True,
        validators=[two_digits_validator],
        help_text=_("empty: any major class"),
    )
    unit = models.ForeignKey(
        "grids.Unit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dispatch_rules",
        verbose_name=_("unit"),
        help_text=_("incidents in this unit or below it; empty: anywhere"),
    )
    police_relevant = models.BooleanField(
        _("police relevant"), null=True, blank=True, help_text=_("empty: either")
    )
    target = models.CharField(_("dispatch to"), max_length=24, choices=DispatchTarget.choices)
    department = models.CharField(
        _("department"),
        max_length=100,
        blank=True,
        help_text=_("the handling department when dispatching to a department, e.g. 城管执法局"),
    )

    class Meta:
        verbose_name = _("dispatch rule")
        verbose_name_plural = _("dispatch rules")
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.order}. {self.name}"

    def clean(self):
        if self.target == DispatchTarget.DEPARTMENT and not self.department.strip():
            raise ValidationError(
                {"department": _("name the department the incidents are dispatched to")}
            )


class IncidentPhoto(models.Model):
    """A photo of an incident, stored through Django's storage API (checked on the way in by
    incidents.services.photos: JPEG, PNG or WebP, size limited)."""

    incident = models.ForeignKey(
        Incident, on_delete=models.PROTECT, related_name="photos", verbose_name=_("incident")
    )
    file = models.FileField(_("file"), upload_to="incidents/%Y/%m/")
    content_type = models.CharField(_("type"), max_length=20)
    size_bytes = models.PositiveIntegerField(_("size (bytes)"))
    uploaded_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )

    class Meta:
        verbose_name = _("photo")
        verbose_name_plural = _("photos")
        ordering = ["uploaded_at", "id"]

    def __str__(self) -> str:
        return f"#{self.incident_id} {self.file.name}"
