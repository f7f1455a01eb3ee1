"""`python manage.py load_demo [--scale N] [--incidents N] [--quiet]`: load the demo district
锦宁区 and its demo incidents (fixtures.demo_incidents).

Idempotent: when the demo is already loaded it changes nothing and prints the demo logins,
except that demo incidents are added once when the database holds none yet.
"""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, connection
from django.db.models import Count
from tqdm import tqdm

from fixtures import demo, demo_incidents, install
from grids.codes import CodeError
from grids.kinds import UnitKind
from grids.models import StaffAssignment, StaffMember, Unit
from grids.services.boundaries import TerritoryError


class Command(BaseCommand):
    help = (
        "Load the generated demo district 锦宁区 (510199) with staff, party branches, "
        "workstations and one login per group. Re-running with the same scale changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            type=int,
            default=1,
            help=f"size: 1 = 3 streets, ~950 micro-grids; N = 3N streets (1–{demo.MAX_SCALE}; "
            "16 gives over 10,000 micro-grids)",
        )
        parser.add_argument(
            "--incidents",
            type=int,
            default=None,
            help=f"how many demo incidents to add when there are none yet (default "
            f"{demo_incidents.PER_MICROGRID} per micro-grid; 0 = none)",
        )
        parser.add_argument(
            "--quiet", action="store_true", help="print only the logins, no progress"
        )

    def handle(self, *, scale: int, quiet: bool, incidents: int | None = None, **options):
        if not 1 <= scale <= demo.MAX_SCALE:
            raise CommandError(f"--scale must be 1–{demo.MAX_SCALE}, not {scale}")
        if incidents is not None and incidents < 0:
            raise CommandError(f"--incidents must be 0 or more, not {incidents}")
        try:
            existing = install.installed_scale()
            if existing is None:
                install.check_logins_free()
        except install.DemoConflict as exc:
            raise CommandError(str(exc)) from None
        if existing is not None and existing != scale:
            raise CommandError(
                f"the database already holds the demo at scale {existing}; load scale {scale} "
                "into a separate database, e.g. DATABASE_URL=spatialite:///var/bench.sqlite3 "
                "(run migrate on it first)"
            )
        if existing is None:
            try:
                self.load(scale, quiet)
            except (install.DemoConflict, TerritoryError, CodeError, IntegrityError) as exc:
                # IntegrityError: another load_demo finished first
                raise CommandError(f"nothing was loaded: {exc}") from None
        elif not quiet:
            self.stdout.write(f"demo district (scale {scale}) already loaded; nothing changed")
        self.load_incidents(incidents, quiet)
        refresh_statistics()
        if not quiet:
            self.print_counts()
        self.print_logins()

    def load_incidents(self, count: int | None, quiet: bool) -> None:
        """Add the demo incidents unless the database already holds some."""
        existing = demo_incidents.installed_count()
        if existing:
            if not quiet:
                self.stdout.write(f"demo incidents: {existing:,} already loaded; nothing changed")
            return
        if count is None:
            micro = Unit.objects.filter(
                kind=UnitKind.MICROGRID, path__startswith=f"/{demo.DISTRICT_CODE}/"
            )
            count = demo_incidents.PER_MICROGRID * micro.filter(retired_on__isnull=True).count()
        started = time.monotonic()

        def stage(text: str) -> None:
            if not quiet:
                self.stdout.write(f"[{time.monotonic() - started:6.1f} s] {text}")

        by_state = demo_incidents.load(count, stage=stage)
        if not quiet:
            stage(f"demo incidents: {sum(by_state.values()):,}")
            parts = [f"{state} {n:,}" for state, n in sorted(by_state.items())]
            self.stdout.write("incidents by state: " + ", ".join(parts))

    def load(self, scale: int, quiet: bool) -> None:
        started = time.monotonic()

        def stage(text: str) -> None:
            if not quiet:
                self.stdout.write(f"[{time.monotonic() - started:6.1f} s] {text}")

        stage(f"generating the demo district at scale {scale}")
        district = demo.generate(scale)
        bar = tqdm(total=len(district.units), unit="unit", disable=quiet, leave=False)

        def progress(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()  # before the next stage line

        try:
            install.install(district, stage=stage, progress=progress)
        finally:
            bar.close()
        stage("done")

    def print_counts(self) -> None:
        counts = dict(Unit.objects.values_list("kind").annotate(n=Count("id")))
        retired = Unit.objects.filter(retired_on__isnull=False).count()
        parts = [f"{kind} {counts.get(kind, 0):,}" for kind in UnitKind.values]
        self.stdout.write("units: " + ", ".join(parts) + f" ({retired} retired by merges)")

    def print_logins(self) -> None:
        users = {
            u.username: u
            for u in get_user_model().objects.filter(
                username__in=[name for name, *_ in demo.LOGINS]
            )
        }
        rows = [("username", "password", "role", "scope")]
        for username, _group, role, _unit in demo.LOGINS:
            user = users.get(username)
            # one table at a time: right after a load the planner knows little about them
            members = list(StaffMember.objects.filter(user=user).values_list("id", flat=True))
            assignment = (
                StaffAssignment.objects.filter(member_id__in=members, role=role)
                .order_by("id")
                .first()
                if user and members
                else None
            )
            scope = _describe(assignment.unit) if assignment else "—"
            rows.append((username, demo.DEMO_PASSWORD, role, scope))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join(cells + [row[3]]))


def refresh_statistics() -> None:
    """On PostgreSQL, ANALYZE the territory and incident tables after a load: a query
    planner that still takes them for empty picks nested loops that take minutes."""
    if connection.vendor != "postgresql":
        return
    tables = [
        name
        for name in connection.introspection.table_names()
        if name.startswith(("grids_", "incidents_"))
    ]
    with connection.cursor() as cursor:
        for name in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")


def _describe(unit: Unit) -> str:
    """ "花园社区第1网格 (510199001001001)": grids are named after their community."""
    name = unit.name
    if unit.kind in (UnitKind.GRID, UnitKind.MICROGRID) and unit.parent:
        name = unit.parent.name + name
    return f"{name} ({unit.code})"
