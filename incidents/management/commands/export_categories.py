from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from incidents.categories import DEFAULT_ENCODING, export_categories


class Command(BaseCommand):
    help = _("Export all problem categories to CSV in the import format.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--encoding",
            default=DEFAULT_ENCODING,
            help="text encoding of the file (default utf-8-sig, which Excel opens)",
        )

    def handle(self, *args, **opts):
        try:
            count = export_categories(opts["path"], encoding=opts["encoding"])
        except (OSError, LookupError, UnicodeEncodeError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _("exported %(count)d categories to %(path)s") % {"count": count, "path": opts["path"]}
        )
