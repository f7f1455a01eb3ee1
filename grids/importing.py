"""Importing unit boundaries from spatial files (the work behind `manage.py import_units`).

Two steps, so that nothing is written unless everything is checked:

1. `check_file` reads the file (GeoJSON, GeoPackage, Shapefile, CSV through pyogrio; GCJ-02
   and BD-09 converted on the way in), and checks every feature: attributes (code present,
   well-formed, unique; parent known), geometry (valid, polygonal, 2D) and the coverage of
   each parent by its children (overlaps, gaps, parts outside the parent, slivers), counting
   units already in the database under the same parents. With `fix`, repairable geometry
   problems are repaired (each change is reported).
2. `apply_plan` writes in one transaction: new units are created, existing ones (same code)
   get a new boundary version only where geometry or attributes changed.
"""

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _
from shapely.geometry.base import BaseGeometry

from gis.coverage import check_coverage, repair_coverage
from gis.geometry import Problem, normalize_polygonal
from gis.spatial_io import read_features
from grids import codes
from grids.geometry import to_shapely
from grids.kinds import PARENT_KINDS, PARTITIONED_KINDS, UnitKind
from grids.models import BoundaryVersion, Unit
from grids.services.boundaries import TerritoryError, revise_unit
from grids.services.bulk import UnitRow, create_units_bulk
from grids.signals import boundaries_changed

NAME_FIELDS = ("name", "Name", "NAME", "名称", "name_zh")
CODE_FIELDS = ("code", "Code", "CODE", "编码", "代码", "adcode")
PARENT_FIELDS = ("parent", "parent_code", "parentCode", "parent_cod", "上级编码")
HOUSEHOLD_FIELDS = ("households", "户数")
POPULATION_FIELDS = ("population", "人口")


class ImportRefused(Exception):
    """The file has errors and neither fix nor force was asked for."""


@dataclass
class ImportOptions:
    kind: str
    layer: str | None = None
    name_field: str | None = None
    code_field: str | None = None
    parent_code_field: str | None = None
    crs: str | None = None
    encoding: str | None = None
    fix: bool = False
    force: bool = False
    valid_from: datetime.date | None = None
    reason: str = ""
    user: object = None


@dataclass
class Feature:
    number: int  # 1-based position in the file
    code: str
    name: str
    parent_code: str | None
    households: int
    population: int
    geometry: BaseGeometry | None
    importable: bool = True


@dataclass
class ImportPlan:
    path: Path
    options: ImportOptions
    features: list[Feature]
    problems: list[Problem]
    warnings: list[str] = field(default_factory=list)
    source_crs: str = ""
    encoding: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error" and not p.fixed]

    def report(self, outcome: dict | None = None) -> dict:
        """The JSON report: counts per problem type, then each problem."""
        counts = Counter(p.type for p in self.problems)
        return {
            "summary": {
                "file": str(self.path),
                "kind": self.options.kind,
                "features": len(self.features),
                "source_crs": self.source_crs,
                "encoding": self.encoding,
                "errors": len(self.errors),
                "warnings": sum(1 for p in self.problems if p.severity == "warning"),
                "fixed": sum(1 for p in self.problems if p.fixed),
                "by_type": dict(sorted(counts.items())),
                "notes": self.warnings,
                **(outcome or {}),
            },
            "problems": [p.to_dict() for p in self.problems],
        }


def _pick(columns, explicit: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if explicit:
        if explicit not in columns:
            raise TerritoryError(
                _("the file has no %(what)s field %(field)r (fields: %(fields)s)")
                % {"what": what, "field": explicit, "fields": ", ".join(map(str, columns))}
            )
        return explicit
    return next((c for c in candidates if c in columns), None)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def _count(value, label: str, feature: int, problems: list[Problem], code: str) -> int:
    text = _text(value)
    if not text:
        return 0
    try:
        number = int(float(text))
        if number < 0:
            raise ValueError
        return number
    except ValueError:
        problems.append(
            Problem(
                type="bad_attribute",
                severity="warning",
                codes=[code] if code else [],
                message=_("feature %(n)d: %(label)s %(value)r is not a whole number ≥ 0; 0 used")
                % {"n": feature, "label": label, "value": text},
            )
        )
        return 0


def check_file(
    path: str | Path, options: ImportOptions, progress: Callable | None = None
) -> ImportPlan:
    """Read and check a file; nothing is written. With options.fix, geometries are repaired."""
    path = Path(path)
    kind = options.kind
    read = read_features(path, layer=options.layer, encoding=options.encoding, crs=options.crs)
    frame = read.frame
    columns = [c for c in frame.columns if c != "geometry"]
    name_field = _pick(columns, options.name_field, NAME_FIELDS, _("name"))
    code_field = _pick(columns, options.code_field, CODE_FIELDS, _("code"))
    parent_field = _pick(columns, options.parent_code_field, PARENT_FIELDS, _("parent code"))
    if code_field is None:
        raise TerritoryError(
            _("no code field found in %(path)s: name it with --code-field (fields: %(fields)s)")
            % {"path": path, "fields": ", ".join(map(str, columns))}
        )
    household_field = _pick(columns, None, HOUSEHOLD_FIELDS, "")
    population_field = _pick(columns, None, POPULATION_FIELDS, "")
    needs_parent = None not in PARENT_KINDS[kind]
    if needs_parent and parent_field is None:
        raise TerritoryError(
            _(
                "%(kind)s units need a parent: name the parent code field with "
                "--parent-code-field (fields: %(fields)s)"
            )
            % {"kind": kind, "fields": ", ".join(map(str, columns))}
        )
    problems: list[Problem] = []
    features: list[Feature] = []
    records = frame.to_dict("records")
    seen: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        code = _text(record.get(code_field))
        parent_code = _text(record.get(parent_field)) if parent_field else ""
        name = _text(record.get(name_field)) if name_field else ""
        feature = Feature(
            number=number,
            code=code,
            name=name or code,
            parent_code=parent_code or None,
            households=_count(record.get(household_field), _("households"), number, problems, code)
            if household_field
            else 0,
            population=_count(record.get(population_field), _("population"), number, problems, code)
            if population_field
            else 0,
            geometry=record.get("geometry"),
        )
        features.append(feature)
        where = _("feature %(n)d") % {"n": number}
        if not code:
            problems.append(
                Problem(
                    type="malformed_code",
                    severity="error",
                    codes=[],
                    message=_("%(where)s has no code") % {"where": where},
                )
            )
            feature.importable = False
        else:
            try:
                codes.validate_code(kind, code, parent_code or None)
            except codes.CodeError as exc:
                problems.append(
                    Problem(
                        type="malformed_code",
                        severity="error",
                        codes=[code],
                        message=f"{where}: {exc}",
                    )
                )
            if code in seen:
                problems.append(
                    Problem(
                        type="duplicate_code",
                        severity="error",
                        codes=[code],
                        message=_("%(where)s: code %(code)s is also used by feature %(other)d")
                        % {"where": where, "code": code, "other": seen[code]},
                    )
                )
                feature.importable = False
            else:
                seen[code] = number
        if not name:
            problems.append(
                Problem(
                    type="missing_name",
                    severity="warning",
                    codes=[code] if code else [],
                    message=_("%(where)s has no name; its code is used as name") % {"where": where},
                )
            )
        if progress:
            progress(1)
    _check_parents(kind, features, problems)
    _check_existing_kinds(kind, features, problems)
    plan = ImportPlan(
        path=path,
        options=options,
        features=features,
        problems=problems,
        warnings=list(read.warnings),
        source_crs=read.source_crs,
        encoding=read.encoding,
    )
    _check_geometry(plan)
    _check_existing_children(plan)
    return plan


def _check_existing_children(plan: ImportPlan) -> None:
    """Warn when units already below the imported ones no longer fit their new boundary.

    A grid redrawn without its micro-grids leaves them sticking out or leaves gaps: the
    import goes ahead (the children are redrawn next), but the report says which and where.
    """
    new_geometry = {
        f.code: f.geometry for f in plan.features if f.importable and f.geometry is not None
    }
    if not new_geometry or plan.options.kind not in PARTITIONED_KINDS:
        return
    children = (
        BoundaryVersion.objects.current()
        .filter(unit__parent__code__in=list(new_geometry), unit__retired_on__isnull=True)
        .exclude(unit__kind=UnitKind.COURTYARD)
        .values_list("unit__code", "geom", "unit__parent__code")
    )
    features = [(code, to_shapely(geom), parent) for code, geom, parent in children]
    if not features:
        return
    report = check_coverage(
        features,
        new_geometry,
        min_area_m2=settings.WEIGE_COVERAGE_MIN_AREA_M2,
        sliver_width_m=settings.WEIGE_SLIVER_WIDTH_M,
    )
    for problem in report.problems:
        if problem.type in ("gap", "outside_parent", "sliver"):
            problem.severity = "warning"
            problem.type = f"children_{problem.type}"
            problem.message = _("existing units below: %(message)s") % {"message": problem.message}
            plan.problems.append(problem)


def _check_parents(kind: str, features: list[Feature], problems: list[Problem]) -> None:
    wanted = {f.parent_code for f in features if f.parent_code}
    allowed = [k for k in PARENT_KINDS[kind] if k]
    found = dict(Unit.objects.filter(code__in=wanted).values_list("code", "kind")) if wanted else {}
    for feature in features:
        where = _("feature %(n)d") % {"n": feature.number}
        if not feature.parent_code:
            if allowed:
                problems.append(
                    Problem(
                        type="unknown_parent",
                        severity="error",
                        codes=[feature.code],
                        message=_("%(where)s (%(code)s) has no parent code; a %(kind)s needs one")
                        % {"where": where, "code": feature.code, "kind": kind},
                    )
                )
                feature.importable = False
            continue
        parent_kind = found.get(feature.parent_code)
        if parent_kind is None:
            problems.append(
                Problem(
                    type="unknown_parent",
                    severity="error",
                    codes=[feature.code],
                    message=_("%(where)s (%(code)s): parent code %(parent)s is not a known unit")
                    % {"where": where, "code": feature.code, "parent": feature.parent_code},
                )
            )
            feature.importable = False
        elif parent_kind not in allowed:
            problems.append(
                Problem(
                    type="unknown_parent",
                    severity="error",
                    codes=[feature.code],
                    message=_(
                        "%(where)s (%(code)s): parent %(parent)s is a %(pkind)s; a %(kind)s "
                        "must sit under %(allowed)s"
                    )
                    % {
                        "where": where,
                        "code": feature.code,
                        "parent": feature.parent_code,
                        "pkind": parent_kind,
                        "kind": kind,
                        "allowed": ", ".join(allowed),
                    },
                )
            )
            feature.importable = False


def _check_existing_kinds(kind: str, features: list[Feature], problems: list[Problem]) -> None:
    existing = dict(
        Unit.objects.filter(code__in=[f.code for f in features if f.code])
        .exclude(kind=kind)
        .values_list("code", "kind")
    )
    for feature in features:
        if feature.code in existing:
            problems.append(
                Problem(
                    type="duplicate_code",
                    severity="error",
                    codes=[feature.code],
                    message=_("feature %(n)d: code %(code)s already belongs to a %(other)s")
                    % {"n": feature.number, "code": feature.code, "other": existing[feature.code]},
                )
            )
            feature.importable = False


def _check_geometry(plan: ImportPlan) -> None:
    """Per-feature geometry checks and the coverage of each parent, with optional repair."""
    kind = plan.options.kind
    for feature in plan.features:
        result = normalize_polygonal(feature.geometry, code=feature.code or None)
        for problem in result.problems:
            problem.message = _("feature %(n)d: %(message)s") % {
                "n": feature.number,
                "message": problem.message,
            }
        if result.geometry is None:
            feature.importable = False
        elif not plan.options.fix:
            feature.geometry = result.geometry
        if not plan.options.fix:
            plan.problems.extend(result.problems)
    importable = [f for f in plan.features if f.importable or plan.options.fix]
    coverage_input = [(f.code, f.geometry, f.parent_code) for f in importable if f.code]
    # Siblings already in the database under the same parents count in the coverage.
    in_file = {f.code for f in importable}
    parent_codes = {f.parent_code for f in importable if f.parent_code}
    existing = (
        Unit.objects.filter(kind=kind, parent__code__in=parent_codes, retired_on__isnull=True)
        .exclude(code__in=in_file)
        .select_related("parent")
    )
    for unit in existing:
        version = unit.current_version()
        if version is not None:
            coverage_input.append((unit.code, to_shapely(version.geom), unit.parent.code))
    parents = {}
    if kind != UnitKind.COURTYARD:  # courtyards do not partition their community
        for parent in Unit.objects.filter(code__in=parent_codes):
            version = parent.current_version()
            if version is not None:
                parents[parent.code] = to_shapely(version.geom)
    min_area = settings.WEIGE_COVERAGE_MIN_AREA_M2
    sliver = settings.WEIGE_SLIVER_WIDTH_M
    if plan.options.fix:
        repaired, problems = repair_coverage(
            coverage_input, parents, min_area_m2=min_area, sliver_width_m=sliver
        )
        for feature in plan.features:
            if feature.code in repaired:
                feature.geometry = repaired[feature.code]
            elif feature.importable:
                feature.importable = False
        plan.problems.extend(problems)
    else:
        report = check_coverage(
            coverage_input, parents, min_area_m2=min_area, sliver_width_m=sliver
        )
        per_feature = {
            "empty_geometry",
            "not_polygonal",
            "out_of_range",
            "too_few_points",
            "invalid_geometry",
            "empty_part",
            "has_z",
            "duplicate_code",
        }
        plan.problems.extend(p for p in report.problems if p.type not in per_feature)


@dataclass
class ImportOutcome:
    created: int = 0
    revised: int = 0
    unchanged: int = 0
    skipped: int = 0

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "revised": self.revised,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
        }


@transaction.atomic
def apply_plan(plan: ImportPlan, progress: Callable | None = None) -> ImportOutcome:
    """Write a checked plan in one transaction (all or nothing).

    Refused when errors remain and force was not asked for. With force, problems are recorded
    on the units they concern; features that cannot be imported at all (no code, no usable
    geometry, unknown parent, duplicate code) are skipped.
    """
    options = plan.options
    if plan.errors and not options.force:
        raise ImportRefused(
            _(
                "%(n)d error(s) found; nothing was imported (use --fix to repair what can be "
                "repaired, or --force to import as-is)"
            )
            % {"n": len(plan.errors)}
        )
    valid_from = options.valid_from or datetime.date.today()
    source = plan.path.name
    by_code: dict[str, list[dict]] = {}
    for problem in plan.problems:
        for code in problem.codes:
            by_code.setdefault(code, []).append(problem.to_dict())
    outcome = ImportOutcome()
    existing = {
        u.code: u for u in Unit.objects.filter(code__in=[f.code for f in plan.features if f.code])
    }
    parents = {
        u.code: u
        for u in Unit.objects.filter(
            code__in={f.parent_code for f in plan.features if f.parent_code}
        )
    }
    new_rows = []
    moved_units: list[int] = []
    for feature in plan.features:
        if not feature.importable or feature.geometry is None:
            outcome.skipped += 1
            continue
        recorded = by_code.get(feature.code, []) if options.force else []
        unit = existing.get(feature.code)
        if unit is None:
            new_rows.append(
                UnitRow(
                    kind=options.kind,
                    code=feature.code,
                    name=feature.name,
                    parent_code=feature.parent_code,
                    geom=feature.geometry,
                    households=feature.households,
                    population=feature.population,
                    problems=recorded,
                )
            )
            continue
        parent = parents.get(feature.parent_code) if feature.parent_code else None
        revision = revise_unit(
            unit,
            valid_from=valid_from,
            geom=feature.geometry,
            name=feature.name,
            parent=parent,
            households=feature.households,
            population=feature.population,
            user=options.user,
            reason=options.reason or _("imported from %(file)s") % {"file": source},
            source=source,
        )
        if revision.version is None:
            outcome.unchanged += 1
        else:
            outcome.revised += 1
            if {"geometry", "parent"} & set(revision.changed):
                moved_units.append(unit.pk)
        if options.force and recorded != unit.problems:
            unit.problems = recorded
            unit.save(update_fields=["problems"])
        if progress:
            progress(1)
    if new_rows:
        created = create_units_bulk(
            new_rows,
            valid_from=valid_from,
            source=source,
            user=options.user,
            reason=options.reason or _("imported from %(file)s") % {"file": source},
            check_codes=not options.force,
            progress=progress,
        )
        outcome.created = len(new_rows)
        moved_units.extend(unit.pk for unit in created.values())
    if moved_units:
        boundaries_changed.send(
            sender=ImportPlan, unit_ids=moved_units, valid_from=valid_from, user=options.user
        )
    return outcome
