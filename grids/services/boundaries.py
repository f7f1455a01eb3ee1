"""Writing the territory: create units, revise boundaries (closing the old version and
recording lineage), retire units. Every function here runs in a transaction."""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.translation import gettext as _
from shapely.geometry.base import BaseGeometry

from grids import codes
from grids.geometry import same_shape, to_geos, to_shapely
from grids.kinds import PARENT_KINDS
from grids.models import BoundaryVersion, ChangeKind, Lineage, Unit


class TerritoryError(ValueError):
    """A territory change that cannot be made; the message says what and where."""


def check_parent(kind: str, parent: Unit | None, code: str) -> None:
    allowed = PARENT_KINDS[kind]
    parent_kind = parent.kind if parent else None
    if parent_kind not in allowed:
        names = ", ".join(k or _("none") for k in allowed)
        raise TerritoryError(
            _("%(kind)s %(code)s cannot sit under %(parent)s (allowed parents: %(allowed)s)")
            % {
                "kind": kind,
                "code": code,
                "parent": parent_kind or _("no parent"),
                "allowed": names,
            }
        )


def unit_path(code: str, parent: Unit | None) -> str:
    """The materialised path of a unit: its ancestors' codes and its own, "/a/b/c/"."""
    return f"{parent.path if parent else '/'}{code}/"


def set_path(unit: Unit) -> None:
    unit.path = unit_path(unit.code, unit.parent)
    Unit.objects.filter(pk=unit.pk).update(path=unit.path)


@transaction.atomic
def create_unit(
    *,
    kind: str,
    code: str,
    name: str,
    geom: BaseGeometry,
    valid_from: datetime.date,
    parent: Unit | None = None,
    households: int = 0,
    population: int = 0,
    grid_type: str = "",
    notes: str = "",
    problems: list | None = None,
    user=None,
    reason: str = "",
    source: str = "",
    change: str = ChangeKind.CREATED,
    sources: Sequence[BoundaryVersion] = (),
    check_code: bool = True,
) -> Unit:
    """Create a unit with its first boundary version."""
    check_parent(kind, parent, code)
    if check_code:
        codes.validate_code(kind, code, parent.code if parent else None)
    if Unit.objects.filter(code=code).exists():
        raise TerritoryError(_("a unit with code %(code)s already exists") % {"code": code})
    unit = Unit.objects.create(
        kind=kind,
        code=code,
        name=name,
        parent=parent,
        households=households,
        population=population,
        grid_type=grid_type,
        notes=notes,
        problems=problems or [],
    )
    set_path(unit)
    version = BoundaryVersion.objects.create(
        unit=unit,
        geom=to_geos(geom),
        valid_from=valid_from,
        change=change,
        reason=reason,
        created_by=user,
        source=source,
        name=name,
        parent=parent,
        households=households,
        population=population,
    )
    link_sources(version, sources, change)
    return unit


def link_sources(version: BoundaryVersion, sources: Iterable[BoundaryVersion], how: str):
    Lineage.objects.bulk_create(
        [Lineage(from_version=s, to_version=version, how=how) for s in sources]
    )


@dataclass
class Revision:
    """What a revision changed: the new version, or None when nothing changed."""

    version: BoundaryVersion | None
    changed: list[str] = field(default_factory=list)


@transaction.atomic
def revise_unit(
    unit: Unit,
    *,
    valid_from: datetime.date,
    geom: BaseGeometry | None = None,
    name: str | None = None,
    parent: Unit | None = ...,  # type: ignore[assignment]
    households: int | None = None,
    population: int | None = None,
    user=None,
    reason: str = "",
    source: str = "",
    change: str | None = None,
) -> Revision:
    """Give a unit a new boundary version if its geometry or attributes changed.

    The open version is closed on `valid_from` and the new one records it as its source.
    Returns a Revision whose `version` is None when nothing differs.
    """
    unit = Unit.objects.select_for_update().get(pk=unit.pk)
    current = unit.current_version()
    if current is None:
        raise TerritoryError(
            _("%(code)s has no open boundary version to revise") % {"code": unit.code}
        )
    new_parent = unit.parent if parent is ... else parent
    changed = []
    if geom is not None and not same_shape(geom, to_shapely(current.geom)):
        changed.append("geometry")
    for label, new, old in (
        ("name", name, current.name),
        ("households", households, current.households),
        ("population", population, current.population),
    ):
        if new is not None and new != old:
            changed.append(label)
    if new_parent != unit.parent:
        check_parent(unit.kind, new_parent, unit.code)
        changed.append("parent")
    if not changed:
        return Revision(None)
    if valid_from < current.valid_from:
        raise TerritoryError(
            _("%(code)s: a new version cannot start (%(new)s) before the current one (%(old)s)")
            % {"code": unit.code, "new": valid_from, "old": current.valid_from}
        )
    current.valid_to = valid_from
    current.save(update_fields=["valid_to"])
    how = change or (ChangeKind.ADJUSTED if "geometry" in changed else ChangeKind.ATTRIBUTES)
    version = BoundaryVersion.objects.create(
        unit=unit,
        geom=to_geos(geom) if geom is not None and "geometry" in changed else current.geom,
        valid_from=valid_from,
        change=how,
        reason=reason,
        created_by=user,
        source=source,
        name=name if name is not None else current.name,
        parent=new_parent,
        households=households if households is not None else current.households,
        population=population if population is not None else current.population,
    )
    link_sources(version, [current], how)
    unit.name, unit.households, unit.population = (
        version.name,
        version.households,
        version.population,
    )
    parent_changed = new_parent != unit.parent
    unit.parent = new_parent
    unit.save(update_fields=["name", "households", "population", "parent"])
    if parent_changed:
        move_subtree(unit)
    return Revision(version, changed)


def move_subtree(unit: Unit) -> None:
    """Recompute the materialised paths of a unit and everything below it."""
    old_prefix = unit.path
    set_path(unit)
    for descendant in Unit.objects.filter(path__startswith=old_prefix).exclude(pk=unit.pk):
        descendant.path = unit.path + descendant.path[len(old_prefix) :]
        descendant.save(update_fields=["path"])


@transaction.atomic
def retire_unit(unit: Unit, *, on: datetime.date) -> BoundaryVersion | None:
    """Close a unit's open version on `on`; the unit stays in history."""
    current = unit.current_version()
    if current is not None:
        if on < current.valid_from:
            raise TerritoryError(
                _("%(code)s cannot be retired on %(on)s, before its version starts %(start)s")
                % {"code": unit.code, "on": on, "start": current.valid_from}
            )
        current.valid_to = on
        current.save(update_fields=["valid_to"])
    unit.retired_on = on
    unit.save(update_fields=["retired_on"])
    return current
