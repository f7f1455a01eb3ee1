import datetime
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from gis.crs import CRSError
from gis.spatial_io import SpatialFileError
from grids.importing import ImportOptions, ImportRefused, apply_plan, check_file
from grids.kinds import parse_kind
from grids.management.reporting import check_report_path, summary_lines, write_report
from grids.services.boundaries import TerritoryError


class Command(BaseCommand):
    help = _(
        "Import unit boundaries from GeoJSON, GeoPackage, Shapefile or CSV. Every feature is "
        "checked first; with errors nothing is imported unless --fix or --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--kind",
            required=True,
            help="district, street, community, village, grid, microgrid or courtyard",
        )
        parser.add_argument("--layer")
        parser.add_argument("--name-field")
        parser.add_argument("--code-field")
        parser.add_argument("--parent-code-field")
        parser.add_argument(
            "--crs", help="wgs84, cgcs2000, gcj02, bd09 or EPSG:n (default: what the file declares)"
        )
        parser.add_argument("--encoding", help="text encoding of the attributes, e.g. GBK")
        parser.add_argument(
            "--valid-from", help="date the new boundaries start (YYYY-MM-DD; default today)"
        )
        parser.add_argument("--reason", default="")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")
        parser.add_argument(
            "--fix", action="store_true", help="repair what can be repaired and say what changed"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="import despite errors; problems are recorded on the units",
        )
        parser.add_argument("--report", help="write the full report to this JSON file")

    def handle(self, *args, **opts):
        check_report_path(opts["report"])
        try:
            kind = parse_kind(opts["kind"])
            valid_from = (
                datetime.date.fromisoformat(opts["valid_from"]) if opts["valid_from"] else None
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        options = ImportOptions(
            kind=kind,
            layer=opts["layer"],
            name_field=opts["name_field"],
            code_field=opts["code_field"],
            parent_code_field=opts["parent_code_field"],
            crs=opts["crs"],
            encoding=opts["encoding"],
            fix=opts["fix"],
            force=opts["force"],
            valid_from=valid_from,
            reason=opts["reason"],
        )
        show_bar = opts["verbosity"] > 0
        try:
            with tqdm(
                desc=_("checking"), unit=_(" features"), disable=not show_bar, file=sys.stderr
            ) as bar:
                plan = check_file(opts["path"], options, progress=bar.update)
        except (SpatialFileError, CRSError, TerritoryError) as exc:
            raise CommandError(str(exc)) from None
        for note in plan.warnings:
            self.stderr.write(_("note: %(note)s") % {"note": note})
        outcome = None
        refused = None
        if not opts["dry_run"]:
            try:
                with tqdm(
                    desc=_("writing"),
                    total=len(plan.features),
                    unit=_(" units"),
                    disable=not show_bar,
                    file=sys.stderr,
                ) as bar:
                    outcome = apply_plan(plan, progress=bar.update)
            except ImportRefused as exc:
                refused = str(exc)
            except TerritoryError as exc:
                refused = _("nothing was imported: %(error)s") % {"error": exc}
        report = plan.report(
            {
                "imported": outcome is not None,
                "dry_run": opts["dry_run"],
                **(outcome.as_dict() if outcome else {}),
            }
        )
        if opts["report"]:
            write_report(opts["report"], report)
        for line in summary_lines(report):
            self.stdout.write(line)
        if outcome:
            self.stdout.write(
                _(
                    "imported: %(created)d created, %(revised)d revised, %(unchanged)d "
                    "unchanged, %(skipped)d skipped"
                )
                % outcome.as_dict()
            )
        elif opts["dry_run"]:
            self.stdout.write(_("dry run: nothing was written"))
        if refused:
            raise CommandError(refused)
