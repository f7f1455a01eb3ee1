#!/usr/bin/env python3
"""Django's command-line utility for weige."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gis.settings")
    from gis import preflight

    try:
        import gis.settings as project_settings  # noqa: F401  (runs the library checks)
    except Exception as exc:  # one clear line instead of a traceback
        if exc.__class__.__name__ == "ImproperlyConfigured" or isinstance(
            exc, preflight.MissingLibrary
        ):
            sys.stderr.write(f"weige: {exc}\n")
            sys.exit(1)
        raise
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
