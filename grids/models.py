"""The territory: units, their dated boundary versions and lineage, and the people and places
attached to them."""

import datetime

from django.conf import settings
from django.contrib.gis.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from grids.kinds import GridType, UnitKind


class Unit(models.Model):
    """A territorial unit: district, street, community, village, grid, micro-grid, courtyard.

    The name, parent and counts here are the current ones; each BoundaryVersion keeps the
    values it was valid with, so lookups at a past date report past names.
    """

    kind = models.CharField(_("kind"), max_length=16, choices=UnitKind.choices, db_index=True)
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent unit"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    # Materialised path of codes ("/<district>/<street>/<code>/") for subtree queries;
    # maintained by grids.services.boundaries.
    path = models.CharField(max_length=255, db_index=True, editable=False, default="")
    grid_type = models.CharField(
        _("grid type"), max_length=16, choices=GridType.choices, blank=True
    )
    households = models.PositiveIntegerField(_("households"), default=0)
    population = models.PositiveIntegerField(_("population"), default=0)
    notes = models.TextField(_("notes"), blank=True)
    # Problems recorded when the unit was imported with --force (list of report dicts).
    problems = models.JSONField(_("recorded problems"), default=list, blank=True)
    retired_on = models.DateField(_("retired on"), null=True, blank=True)

    class Meta:
        verbose_name = _("unit")
        verbose_name_plural = _("units")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def current_version(self) -> "BoundaryVersion | None":
        return self.versions.filter(valid_to__isnull=True).first()

    def version_at(self, date: datetime.date) -> "BoundaryVersion | None":
        return self.versions.valid_at(date).first()


class ChangeKind(models.TextChoices):
    CREATED = "created", _("created")
    ADJUSTED = "adjusted", _("adjusted")
    SPLIT = "split", _("split")
    MERGED = "merged", _("merged")
    ATTRIBUTES = "attributes", _("attributes changed")


class VersionDeletionRefused(Exception):
    """Boundary versions are history: they are closed, never deleted."""


class BoundaryVersionQuerySet(models.QuerySet):
    def valid_at(self, date: datetime.date) -> "BoundaryVersionQuerySet":
        return self.filter(valid_from__lte=date).filter(
            Q(valid_to__isnull=True) | Q(valid_to__gt=date)
        )

    def current(self) -> "BoundaryVersionQuerySet":
        return self.filter(valid_to__isnull=True)

    def delete(self):
        raise VersionDeletionRefused(_("boundary versions are never deleted; close them"))


class BoundaryVersion(models.Model):
    """One dated boundary of a unit, valid on [valid_from, valid_to); open while valid_to is
    empty. Versions are never deleted; `sources` records the versions it came from."""

    unit = models.ForeignKey(
        Unit, verbose_name=_("unit"), on_delete=models.PROTECT, related_name="versions"
    )
    geom = models.MultiPolygonField(_("boundary"), srid=4326)
    valid_from = models.DateField(_("valid from"), db_index=True)
    valid_to = models.DateField(_("valid to"), null=True, blank=True, db_index=True)
    change = models.CharField(
        _("change"), max_length=16, choices=ChangeKind.choices, default=ChangeKind.CREATED
    )
    reason = models.TextField(_("reason"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    source = models.CharField(_("source"), max_length=255, blank=True)
    # Attributes as they were while this version was valid.
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        Unit,
        verbose_name=_("parent unit"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    households = models.PositiveIntegerField(_("households"), default=0)
    population = models.PositiveIntegerField(_("population"), default=0)
    sources = models.ManyToManyField(
        "self",
        through="Lineage",
        through_fields=("to_version", "from_version"),
        symmetrical=False,
        related_name="successors",
        verbose_name=_("came from"),
    )

    objects = BoundaryVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("boundary version")
        verbose_name_plural = _("boundary versions")
        ordering = ["unit_id", "valid_from", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["unit"],
                condition=Q(valid_to__isnull=True),
                name="one_open_version_per_unit",
            ),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gte=models.F("valid_from")),
                name="version_ends_after_it_starts",
            ),
        ]

    def __str__(self) -> str:
        end = self.valid_to.isoformat() if self.valid_to else "…"
        return f"{self.unit.code} {self.valid_from.isoformat()}–{end}"

    def delete(self, *args, **kwargs):
        raise VersionDeletionRefused(_("boundary versions are never deleted; close them"))


class Lineage(models.Model):
    """Version `to_version` came from `from_version` by `how`."""

    from_version = models.ForeignKey(
        BoundaryVersion, on_delete=models.PROTECT, related_name="lineage_out"
    )
    to_version = models.ForeignKey(
        BoundaryVersion, on_delete=models.PROTECT, related_name="lineage_in"
    )
    how = models.CharField(_("how"), max_length=16, choices=ChangeKind.choices)

    class Meta:
        verbose_name = _("lineage")
        verbose_name_plural = _("lineage")
        constraints = [
            models.UniqueConstraint(fields=["from_version", "to_version"], name="lineage_once")
        ]


class Role(models.TextChoices):
    """Staff roles (DOMAIN.md §1) and the two district office roles."""

    GRID_CHIEF = "grid_chief", _("grid chief")
    GRID_INSTRUCTOR = "grid_instructor", _("grid instructor")
    FULLTIME_MEMBER = "fulltime_member", _("full-time grid member")
    PARTTIME_MEMBER = "parttime_member", _("part-time grid member")
    MICROGRID_LIAISON = "microgrid_liaison", _("micro-grid liaison")
    BUILDING_HEAD = "building_head", _("building head")
    COMMUNITY_POLICE = "community_police", _("community police officer")
    AUXILIARY_POLICE = "auxiliary_police", _("auxiliary police")
    PARTY_VOLUNTEER = "party_volunteer", _("party-member volunteer")
    PLANNER = "planner", _("planner")
    DISTRICT_ADMIN = "district_admin", _("district administrator")


class StaffMember(models.Model):
    name = models.CharField(_("name"), max_length=50)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("login"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="staff",
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("staff member")
        verbose_name_plural = _("staff members")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class StaffAssignmentQuerySet(models.QuerySet):
    def active_on(self, date: datetime.date) -> "StaffAssignmentQuerySet":
        return self.filter(start__lte=date).filter(Q(end__isnull=True) | Q(end__gte=date))


class StaffAssignment(models.Model):
    """A staff member holds a role in a unit from `start` to `end` (inclusive, open if empty).

    The units a user's member is assigned to, and everything below them, are the user's
    scope."""

    member = models.ForeignKey(
        StaffMember,
        verbose_name=_("staff member"),
        on_delete=models.CASCADE,
        related_name="assignments",
    )
    unit = models.ForeignKey(
        Unit, verbose_name=_("unit"), on_delete=models.PROTECT, related_name="assignments"
    )
    role = models.CharField(_("role"), max_length=24, choices=Role.choices)
    start = models.DateField(_("start"))
    end = models.DateField(_("end"), null=True, blank=True)

    objects = StaffAssignmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("staff assignment")
        verbose_name_plural = _("staff assignments")
        ordering = ["unit__code", "role", "start"]
        indexes = [models.Index(fields=["unit", "role"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=models.F("start")),
                name="assignment_ends_after_it_starts",
            )
        ]

    def __str__(self) -> str:
        return f"{self.member} · {self.get_role_display()} · {self.unit.code}"


class PartyBranchKind(models.TextChoices):
    COMMUNITY_COMMITTEE = "community_committee", _("community big party committee")
    COMMUNITY_BRANCH = "community_branch", _("community party branch")
    VILLAGE_BRANCH = "village_branch", _("village party branch")
    GRID_BRANCH = "grid_branch", _("grid party branch")


class PartyBranch(models.Model):
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=24, choices=PartyBranchKind.choices)
    unit = models.ForeignKey(
        Unit, verbose_name=_("unit"), on_delete=models.PROTECT, related_name="party_branches"
    )
    secretary = models.ForeignKey(
        StaffMember,
        verbose_name=_("secretary"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    members = models.PositiveIntegerField(_("party members"), default=0)
    founded_on = models.DateField(_("founded on"), null=True, blank=True)

    class Meta:
        verbose_name = _("party branch")
        verbose_name_plural = _("party branches")
        ordering = ["unit__code", "name"]

    def __str__(self) -> str:
        return self.name


class Workstation(models.Model):
    """A grid workstation (网格工作站): a staffed place serving a set of units."""

    name = models.CharField(_("name"), max_length=100)
    location = models.PointField(_("location"), srid=4326)
    address = models.CharField(_("address"), max_length=200, blank=True)
    units = models.ManyToManyField(
        Unit, verbose_name=_("units served"), related_name="workstations"
    )
    pilot = models.BooleanField(_("fine-grid pilot (精网微格)"), default=False)
    opened_on = models.DateField(_("opened on"), null=True, blank=True)

    class Meta:
        verbose_name = _("grid workstation")
        verbose_name_plural = _("grid workstations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ServiceStation(models.Model):
    """A party-and-public service station (党群服务站) or service point."""

    name = models.CharField(_("name"), max_length=100)
    location = models.PointField(_("location"), srid=4326)
    unit = models.ForeignKey(
        Unit, verbose_name=_("unit"), on_delete=models.PROTECT, related_name="service_stations"
    )
    opening_hours = models.CharField(_("opening hours"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("service station")
        verbose_name_plural = _("service stations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DataRevision(models.Model):
    """A token the database replaces whenever a watched set of tables is written.

    Triggers (migration 0004) set the "staffing" row's token on every insert, update or
    delete of units and staff assignments — from the app, the admin, a bulk command or plain
    SQL alike — so a cache of facts derived from those tables (the coverage map's staffing
    bands) can key on it and never serve an answer older than the last write. The token is
    the next value of a sequence on PostgreSQL (new for every writing statement, also within
    one transaction) and a random 64-bit number on SQLite (one per written row); only its
    changing matters. Read it with `revision()`."""

    name = models.CharField(_("name"), max_length=40, primary_key=True)
    token = models.BigIntegerField(_("token"))

    class Meta:
        verbose_name = _("data revision")
        verbose_name_plural = _("data revisions")

    def __str__(self) -> str:
        return f"{self.name}: {self.token}"


def revision(name: str = "staffing") -> int | None:
    """The current token of `name` (None before the first write since the table was
    emptied)."""
    return DataRevision.objects.filter(pk=name).values_list("token", flat=True).first()
