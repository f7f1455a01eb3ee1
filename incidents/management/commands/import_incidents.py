import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from grids.management.reporting import check_report_path, write_report
from incidents.importing import (
    DEFAULT_CHUNK,
    DEFAULT_ENCODING,
    ImportFileError,
    ImportOptions,
    import_incidents,
)


class Command(BaseCommand):
    help = _(
        "Import incidents from CSV or GeoJSON in chunks, geotagged and with deadlines. Bad rows "
        "are skipped and listed; rows whose external id already exists are left unchanged, so "
        "the import can be run again (also after being interrupted). Without --id-field a row's "
        "external id is derived from its point, category and report time (row-<hash>; without "
        "--time-field from the file's name instead of the time), so a renamed file or another "
        "export with the same reports imports nothing twice. Times without a time zone are "
        "Asia/Shanghai."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--format", choices=["csv", "geojson"], help="default: from the file name"
        )
        parser.add_argument("--lon-field", default="lon", help="CSV longitude column (default lon)")
        parser.add_argument("--lat-field", default="lat", help="CSV latitude column (default lat)")
        parser.add_argument(
            "--crs",
            default="wgs84",
            choices=["wgs84", "cgcs2000", "gcj02", "bd09"],
            help="coordinate system of the file (default wgs84)",
        )
        parser.add_argument(
            "--category-field", default="category", help="column with the category (code)"
        )
        parser.add_argument(
            "--category-map",
            help="CSV with columns source_value,category_code mapping the file's values to codes",
        )
        parser.add_argument(
            "--time-field", help="column with the report time (default: the time of the import)"
        )
        parser.add_argument(
            "--time-format",
            help="strptime format, e.g. '%%m/%%d/%%Y %%I:%%M:%%S %%p' (default ISO 8601); "
            "times without a time zone are taken as Asia/Shanghai",
        )
        parser.add_argument(
            "--id-field",
            help="column with the external id (default: derived from the row's point, category "
            "and time)",
        )
        parser.add_argument("--source", default="import", help="incident source (default import)")
        parser.add_argument(
            "--encoding",
            default=DEFAULT_ENCODING,
            help="text encoding, e.g. gbk for a CSV saved by Excel (default utf-8-sig)",
        )
        parser.add_argument(
            "--delimiter",
            default=",",
            help="the CSV's cell separator: one character, or tab (default ,)",
        )
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="rows per chunk")
        parser.add_argument("--report", help="write the summary and every rejected row to JSON")

    def handle(self, *args, **opts):
        check_report_path(opts["report"])
        options = ImportOptions(
            format=opts["format"],
            lon_field=opts["lon_field"],
            lat_field=opts["lat_field"],
            crs=opts["crs"],
            category_field=opts["category_field"],
            category_map=opts["category_map"],
            time_field=opts["time_field"],
            time_format=opts["time_format"],
            id_field=opts["id_field"],
            source=opts["source"],
            encoding=opts["encoding"],
            delimiter={"tab": "\t", "\\t": "\t"}.get(opts["delimiter"], opts["delimiter"]),
            chunk_size=opts["chunk_size"],
        )
        try:
            with tqdm(
                desc=_("importing"),
                unit=_(" rows"),
                disable=opts["verbosity"] == 0,
                file=sys.stderr,
            ) as bar:

                def expect(rows: int) -> None:
                    bar.total = rows
                    bar.refresh()

                result = import_incidents(opts["path"], options, progress=bar.update, expect=expect)
                bar.total = bar.n  # the lines counted may be more than the rows
        except (ImportFileError, LookupError) as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            raise CommandError(
                _(
                    "interrupted: the chunks written so far are stored; run the same command "
                    "again to import the rest (stored rows count as unchanged)"
                )
            ) from None
        report = result.report()
        if opts["report"]:
            write_report(opts["report"], report)
        summary = report["summary"]
        self.stdout.write(
            _(
                "%(rows)d rows: %(imported)d imported, %(unchanged)d unchanged, %(rejected)d "
                "rejected; %(unassigned)d unassigned, %(near_boundary)d near a boundary "
                "(%(seconds).1f s)"
            )
            % summary
        )
        for reason, count in summary["rejected_by_reason"].items():
            self.stdout.write(f"  {reason:<18} {count}")
        for rejected in result.rejected[:20]:
            self.stdout.write(_("  row %(row)d: %(reason)s: %(message)s") % rejected.as_dict())
        if len(result.rejected) > 20:
            self.stdout.write(
                _("  … and %(n)d more (write them all with --report FILE)")
                % {"n": len(result.rejected) - 20}
            )
