"""What the territory commands print and write: a summary table and the JSON report."""

import json
from pathlib import Path

from django.utils.translation import gettext as _


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
