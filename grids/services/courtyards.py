"""Courtyard merges (院落合并): several walled compounds become one courtyard."""

import datetime
from collections.abc import Sequence

import shapely
from django.db import transaction
from django.utils.translation import gettext as _

from grids.geometry import to_shapely
from grids.kinds import UnitKind
from grids.models import ChangeKind, Unit
from grids.services.boundaries import TerritoryError, create_unit, retire_unit

CONTIGUITY_TOLERANCE_DEG = 1e-6  # about 0.1 m


@transaction.atomic
def merge_courtyards(
    courtyards: Sequence[Unit],
    *,
    code: str,
    name: str,
    valid_from: datetime.date,
    user=None,
    reason: str = "",
    force: bool = False,
) -> Unit:
    """Merge courtyards into a new one whose boundary is their union.

    The old courtyards' versions are closed on `valid_from` (they stay in history) and the
    new version records each of them as a source ("merged"). Households and population add
    up. Refused unless forced when the courtyards are not contiguous (their union is not one
    polygon) or do not all belong to the same community/village.
    """
    courtyards = list(
        Unit.objects.select_for_update().filter(pk__in=[c.pk for c in courtyards]).order_by("code")
    )
    if len(courtyards) < 2:
        raise TerritoryError(_("a merge needs at least two courtyards"))
    not_courtyards = [c.code for c in courtyards if c.kind != UnitKind.COURTYARD]
    if not_courtyards:
        raise TerritoryError(
            _("only courtyards can be merged; not courtyards: %(codes)s")
            % {"codes": ", ".join(not_courtyards)}
        )
    versions = []
    for courtyard in courtyards:
        version = courtyard.current_version()
        if version is None:
            raise TerritoryError(
                _("courtyard %(code)s has no current boundary (already merged or retired?)")
                % {"code": courtyard.code}
            )
        versions.append(version)
    parents = {c.parent_id for c in courtyards}
    if len(parents) > 1 and not force:
        raise TerritoryError(
            _(
                "courtyards %(codes)s belong to different communities; use force to merge them "
                "anyway"
            )
            % {"codes": ", ".join(c.code for c in courtyards)}
        )
    geoms = [to_shapely(v.geom) for v in versions]
    union = shapely.union_all(geoms)
    # Contiguity allows for digitising noise: compounds closer than ~0.1 m count as touching.
    touching = shapely.union_all(shapely.buffer(geoms, CONTIGUITY_TOLERANCE_DEG))
    if touching.geom_type != "Polygon":
        pieces = len(touching.geoms)
        if not force:
            raise TerritoryError(
                _(
                    "courtyards %(codes)s are not contiguous: their union has %(n)d separate "
                    "parts; use force to merge them anyway"
                )
                % {"codes": ", ".join(c.code for c in courtyards), "n": pieces}
            )
    parent = courtyards[0].parent
    for courtyard in courtyards:
        retire_unit(courtyard, on=valid_from)
    return create_unit(
        kind=UnitKind.COURTYARD,
        code=code,
        name=name,
        geom=union,
        valid_from=valid_from,
        parent=parent,
        households=sum(c.households for c in courtyards),
        population=sum(c.population for c in courtyards),
        user=user,
        reason=reason
        or _("merged from %(codes)s") % {"codes": ", ".join(c.code for c in courtyards)},
        change=ChangeKind.MERGED,
        sources=versions,
    )
