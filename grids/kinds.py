"""Unit kinds of the territory and which kind may sit under which (DOMAIN.md §1)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class UnitKind(models.TextChoices):
    DISTRICT = "district", _("district")
    STREET = "street", _("street/town")
    COMMUNITY = "community", _("community")
    VILLAGE = "village", _("village / rural residential area")
    GRID = "grid", _("grid")
    MICROGRID = "microgrid", _("micro-grid")
    COURTYARD = "courtyard", _("courtyard")


class GridType(models.TextChoices):
    COMMUNITY = "community", _("community grid")
    RURAL = "rural", _("rural grid")
    SPECIAL = "special", _("special grid")


# Allowed parent kinds per kind; None means "may have no parent".
PARENT_KINDS: dict[str, tuple[str | None, ...]] = {
    UnitKind.DISTRICT: (None,),
    UnitKind.STREET: (UnitKind.DISTRICT,),
    UnitKind.COMMUNITY: (UnitKind.STREET,),
    UnitKind.VILLAGE: (UnitKind.STREET,),
    UnitKind.GRID: (UnitKind.COMMUNITY, UnitKind.VILLAGE),
    UnitKind.MICROGRID: (UnitKind.GRID,),
    UnitKind.COURTYARD: (UnitKind.COMMUNITY, UnitKind.VILLAGE),
}

# The lookup chain, top to bottom; courtyards are reported beside it.
CHAIN_LEVELS: tuple[tuple[str, ...], ...] = (
    (UnitKind.DISTRICT,),
    (UnitKind.STREET,),
    (UnitKind.COMMUNITY, UnitKind.VILLAGE),
    (UnitKind.GRID,),
    (UnitKind.MICROGRID,),
)

# Kinds whose children must cover them exactly (no gaps, no overlaps).
PARTITIONED_KINDS = (UnitKind.COMMUNITY, UnitKind.VILLAGE, UnitKind.GRID)


def parse_kind(text: str) -> str:
    """The UnitKind value for a kind name, or ValueError listing the accepted names."""
    value = text.strip().lower().replace("-", "").replace("_", "")
    aliases = {"microgrid": UnitKind.MICROGRID, "town": UnitKind.STREET}
    value = aliases.get(value, value)
    if value not in UnitKind.values:
        raise ValueError(f"unknown unit kind {text!r}: use one of {', '.join(UnitKind.values)}")
    return value
