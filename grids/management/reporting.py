"""What the territory commands print and write: a summary table and the JSON report."""

import json
import os
from pathlib import Path

from django.utils.translation import gettext as _


def check_report_path(path: str | Path | None) -> None:
    """Refuse a --report path that cannot be written, before any work is done (an import
    must not commit and then fail to say what it did)."""
    if not path:
        return
    from django.core.management.base import CommandError

    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CommandError(_("--report %(path)s is a directory, not a file") % {"path": path})
    if not folder.is_dir():
        raise CommandError(
            _("--report %(path)s: there is no folder %(folder)s") % {"path": path, "folder": folder}
        )
    if not os.access(folder, os.W_OK):
        raise CommandError(
            _("--report %(path)s: the folder %(folder)s is not writable")
            % {"path": path, "folder": folder}
        )


def write_report(path: str | Path, report: dict) -> None:
    """Write the report as UTF-8 JSON (Chinese kept readable), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


def summary_lines(report: dict, shown: int = 20) -> list[str]:
    """Counts per problem type, then the first `shown` problems with codes and location."""
    summary = report["summary"]
    lines = [
        _("%(errors)d error(s), %(warnings)d warning(s) in %(features)d feature(s)")
        % {
            "errors": summary["errors"],
            "warnings": summary["warnings"],
            "features": summary["features"],
        }
    ]
    for problem_type, count in sorted(summary["by_type"].items()):
        lines.append(f"  {problem_type:<18} {count}")
    problems = report["problems"]
    for problem in problems[:shown]:
        state = " [fixed]" if problem.get("fixed") else ""
        lines.append(f"  - {problem['severity']}: {problem['message']}{state}")
        if problem.get("change"):
            lines.append(f"      {problem['change']}")
    if len(problems) > shown:
        lines.append(
            _("  … and %(n)d more (write them all with --report FILE)")
            % {"n": len(problems) - shown}
        )
    return lines
