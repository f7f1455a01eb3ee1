import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from grids.coverage_check import check_unit_coverage
from grids.kinds import parse_kind
from grids.management.reporting import check_report_path, summary_lines, write_report
from grids.services.boundaries import TerritoryError


class Command(BaseCommand):
    help = _(
        "Check that units of a kind cover their parents with no gaps, overlaps, slivers or "
        "parts outside the parent. Exits with status 1 when errors are found."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True)
        parser.add_argument("--parent", help="only units under this unit code")
        parser.add_argument("--at", help="date to check (YYYY-MM-DD; default today)")
        parser.add_argument("--report", help="write the full report to this JSON file")

    def handle(self, *args, **opts):
        check_report_path(opts["report"])
        try:
            kind = parse_kind(opts["kind"])
            at = datetime.date.fromisoformat(opts["at"]) if opts["at"] else None
            result = check_unit_coverage(kind, opts["parent"], at)
        except (ValueError, TerritoryError) as exc:
            raise CommandError(str(exc)) from None
        report = result.to_dict()
        report["summary"] = {"kind": kind, "parent": opts["parent"], **report["summary"]}
        if opts["report"]:
            write_report(opts["report"], report)
        for line in summary_lines(report):
            self.stdout.write(line)
        if result.errors:
            raise CommandError(
                _("coverage has %(n)d error(s)") % {"n": len(result.errors)}, returncode=1
            )
