from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from incidents.categories import DEFAULT_ENCODING, CategoryFileError, import_categories


class Command(BaseCommand):
    help = _(
        "Import problem categories from CSV, matched by code. Every row is checked first; "
        "with errors nothing is written unless --skip-bad."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")
        parser.add_argument(
            "--skip-bad",
            action="store_true",
            help="write the good rows and list the bad ones",
        )
        parser.add_argument(
            "--encoding",
            default=DEFAULT_ENCODING,
            help="text encoding of the file, e.g. gbk for a CSV saved by Excel (default utf-8-sig)",
        )

    def handle(self, *args, **opts):
        try:
            summary = import_categories(
                opts["path"],
                dry_run=opts["dry_run"],
                skip_bad=opts["skip_bad"],
                encoding=opts["encoding"],
            )
        except CategoryFileError as exc:
            raise CommandError(str(exc)) from None
        for warning in summary.warnings:
            self.stderr.write(_("note: %(note)s") % {"note": warning})
        for error in summary.errors:
            self.stderr.write(str(error))
        if opts["verbosity"] > 1:
            for code in summary.updated:
                self.stdout.write(
                    _("%(code)s: changed %(fields)s")
                    % {"code": code, "fields": ", ".join(summary.changes[code])}
                )
        self.stdout.write(
            _(
                "created: %(created)d, updated: %(updated)d, unchanged: %(unchanged)d, "
                "rows with errors: %(errors)d"
            )
            % summary.counts()
        )
        if summary.dry_run:
            self.stdout.write(_("dry run: nothing was written"))
        elif not summary.written:
            raise CommandError(
                _(
                    "nothing was imported: %(count)d rows have errors; fix them or use "
                    "--skip-bad to import the good rows"
                )
                % {"count": len(summary.errors)}
            )
