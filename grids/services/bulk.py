"""Bulk creation of a territory: thousands of units with their first boundary versions in a
few hundred statements, for the demo district and boundary imports.

The same rules as grids.services.boundaries.create_unit (parent kinds, well-formed codes, no
duplicate codes, code-based materialised paths) checked once per row in Python, then
`bulk_create` level by level, parents first, all in one transaction: either every unit is
created or none is.
"""

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext as _
from shapely.geometry.base import BaseGeometry

from grids import codes
from grids.geometry import to_geos
from grids.models import BoundaryVersion, ChangeKind, Unit
from grids.services.boundaries import TerritoryError, check_parent, unit_path

BATCH_SIZE = 500  # rows per INSERT; safe for SQLite's bound-variable limit


@dataclass
class UnitRow:
    """One unit to create. `parent_code` names a unit in the same batch or in the database."""

    kind: str
    code: str
    name: str
    parent_code: str | None
    geom: BaseGeometry  # polygon or multipolygon, WGS84 lon/lat
    households: int = 0
    population: int = 0
    grid_type: str = ""
    notes: str = ""
    problems: list = field(default_factory=list)


@transaction.atomic
def create_units_bulk(
    rows: Iterable[UnitRow],
    *,
    valid_from: datetime.date,
    source: str = "",
    user=None,
    reason: str = "",
    check_codes: bool = True,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Unit]:
    """Create units and their first boundary versions (valid from `valid_from`).

    Returns the created units by code. Raises TerritoryError (nothing is written) for a
    duplicate or existing code, an unknown parent, a parent of the wrong kind, a malformed
    code (unless `check_codes` is False) or a geometry that is not polygonal. `progress(n)`
    is called after each batch of n units.
    """
    rows = list(rows)
    levels = _levels(rows)
    taken = _existing(Unit, [r.code for r in rows], batch_size)
    if taken:
        raise TerritoryError(
            _("units with these codes already exist: %(codes)s") % {"codes": _some(taken)}
        )
    in_batch = {r.code for r in rows}
    outside = sorted({r.parent_code for r in rows if r.parent_code} - in_batch)
    parents = {u.code: u for u in _fetch(outside, batch_size)}
    missing = [c for c in outside if c not in parents]
    if missing:
        raise TerritoryError(_("parent units not found: %(codes)s") % {"codes": _some(missing)})
    created: dict[str, Unit] = {}
    for level in levels:
        units = [
            _unit(row, created.get(row.parent_code) or parents.get(row.parent_code), check_codes)
            for row in level
        ]
        for start in range(0, len(units), batch_size):
            chunk = units[start : start + batch_size]
            Unit.objects.bulk_create(chunk, batch_size=batch_size)
            if any(u.pk is None for u in chunk):  # a backend that cannot return ids
                ids = dict(
                    Unit.objects.filter(code__in=[u.code for u in chunk]).values_list("code", "pk")
                )
                for unit in chunk:
                    unit.pk = ids[unit.code]
            BoundaryVersion.objects.bulk_create(
                [
                    _version(row, unit, valid_from, source, user, reason)
                    for row, unit in zip(level[start : start + batch_size], chunk, strict=True)
                ],
                batch_size=batch_size,
            )
            if progress:
                progress(len(chunk))
        created.update((u.code, u) for u in units)
    return created


def _levels(rows: Sequence[UnitRow]) -> list[list[UnitRow]]:
    """Rows grouped by depth below the nearest parent outside the batch: parents first."""
    by_code: dict[str, UnitRow] = {}
    for row in rows:
        if row.code in by_code:
            raise TerritoryError(_("code %(code)s appears twice") % {"code": row.code})
        by_code[row.code] = row
    depth: dict[str, int] = {}
    for row in rows:
        chain, code = [], row.code
        while code in by_code and code not in depth:
            if code in chain:
                raise TerritoryError(
                    _("units %(codes)s are each other's parents") % {"codes": ", ".join(chain)}
                )
            chain.append(code)
            code = by_code[code].parent_code
        base = depth.get(code, -1)
        for offset, item in enumerate(reversed(chain), start=1):
            depth[item] = base + offset
    levels: list[list[UnitRow]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for row in rows:
        levels[depth[row.code]].append(row)
    return levels


def _unit(row: UnitRow, parent: Unit | None, check_codes: bool) -> Unit:
    check_parent(row.kind, parent, row.code)
    if check_codes:
        codes.validate_code(row.kind, row.code, parent.code if parent else None)
    return Unit(
        kind=row.kind,
        code=row.code,
        name=row.name,
        parent=parent,
        path=unit_path(row.code, parent),
        households=row.households,
        population=row.population,
        grid_type=row.grid_type,
        notes=row.notes,
        problems=row.problems or [],
    )


def _version(row: UnitRow, unit: Unit, valid_from, source, user, reason) -> BoundaryVersion:
    try:
        geom = to_geos(row.geom)
    except ValueError as exc:
        raise TerritoryError(f"{row.code}: {exc}") from None
    return BoundaryVersion(
        unit=unit,
        geom=geom,
        valid_from=valid_from,
        change=ChangeKind.CREATED,
        reason=reason,
        created_by=user,
        source=source,
        name=row.name,
        parent=unit.parent,
        households=row.households,
        population=row.population,
    )


def _fetch(codes_: Sequence[str], batch_size: int) -> list[Unit]:
    found: list[Unit] = []
    for start in range(0, len(codes_), batch_size):
        found += Unit.objects.filter(code__in=codes_[start : start + batch_size])
    return found


def _existing(model, codes_: Sequence[str], batch_size: int) -> list[str]:
    taken: list[str] = []
    for start in range(0, len(codes_), batch_size):
        chunk = codes_[start : start + batch_size]
        taken += model.objects.filter(code__in=chunk).values_list("code", flat=True)
    return sorted(taken)


def _some(items: Sequence[str], shown: int = 5) -> str:
    text = ", ".join(items[:shown])
    if len(items) > shown:
        text += _(" and %(n)d more") % {"n": len(items) - shown}
    return text
