"""Colour bands of the indicators (DOMAIN.md §5: "ratings are shown in colour bands").

The thresholds live in one place, the WEIGE_KPI_BANDS setting: per rate (an
incidents.kpis.Indicators field) ``good`` and ``fair`` thresholds and whether lower is
better. Higher-is-better: good from ``good``, fair from ``fair``, else poor. Lower-is-better
(rework, extension): good up to ``good``, fair up to ``fair``, else poor. A rate that is
None (nothing to divide by) or has no thresholds gets no band.
"""

from dataclasses import dataclass

from django.conf import settings

GOOD, FAIR, POOR = "good", "fair", "poor"


@dataclass(frozen=True)
class Thresholds:
    good: float
    fair: float
    lower_is_better: bool = False


def thresholds(rate: str) -> Thresholds | None:
    """The thresholds of `rate` from the WEIGE_KPI_BANDS setting, or None."""
    spec = getattr(settings, "WEIGE_KPI_BANDS", {}).get(rate)
    if not spec:
        return None
    return Thresholds(
        good=float(spec["good"]),
        fair=float(spec["fair"]),
        lower_is_better=bool(spec.get("lower_is_better", False)),
    )


def band(rate: str, value: float | None) -> str | None:
    """The band (GOOD, FAIR or POOR) of `value` of `rate`; None without a value or thresholds."""
    limits = thresholds(rate)
    if value is None or limits is None:
        return None
    if limits.lower_is_better:
        if value <= limits.good:
            return GOOD
        return FAIR if value <= limits.fair else POOR
    if value >= limits.good:
        return GOOD
    return FAIR if value >= limits.fair else POOR
