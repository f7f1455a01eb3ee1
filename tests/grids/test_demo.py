"""The demo district: a deterministic generator whose units tile their parents exactly, and
`load_demo`, which loads it once (idempotent) with the seed story, staff and logins."""

import datetime
import io
from collections import Counter, defaultdict

import pyproj
import pytest
import shapely
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import transaction

from fixtures import demo
from grids import codes, roles
from grids.geometry import to_shapely
from grids.models import (
    BoundaryVersion,
    ChangeKind,
    Lineage,
    PartyBranch,
    Role,
    ServiceStation,
    StaffAssignment,
    StaffMember,
    Unit,
    Workstation,
)

HIERARCHY = ("district", "street", "community", "village", "grid", "microgrid")
GEOD = pyproj.Geod(ellps="GRS80")


@pytest.fixture(scope="module")
def district():
    return demo.generate(1)


@pytest.fixture(scope="class")
def loaded(django_db_setup, django_db_blocker):
    """The scale-1 demo loaded once for a test class, rolled back after the class."""
    with django_db_blocker.unblock(), transaction.atomic():
        out = io.StringIO()
        call_command("load_demo", stdout=out, stderr=io.StringIO())
        yield out.getvalue()
        transaction.set_rollback(True)


def fingerprint(d: demo.Demo) -> list:
    units = [
        (
            u.kind,
            u.code,
            u.name,
            u.parent_code,
            shapely.to_wkb(u.geom),
            u.households,
            u.population,
            u.grid_type,
            u.notes,
        )
        for u in d.units
    ]
    staff = [
        (s.name, s.phone, s.notes, s.login, [tuple(vars(a).values()) for a in s.assignments])
        for s in d.staff
    ]
    places = [(w.name, w.location.wkb, w.unit_codes, w.pilot) for w in d.workstations]
    places += [(s.name, s.location.wkb, s.unit_code) for s in d.service_stations]
    return [units, staff, places, d.branches, d.merges, d.logins]


def children_of(d: demo.Demo) -> dict[str, list[demo.DemoUnit]]:
    children = defaultdict(list)
    for unit in d.units:
        if unit.kind != "courtyard":
            children[unit.parent_code].append(unit)
    return children


# -- the generator (no database) ------------------------------------------------------------
def test_same_seed_gives_identical_district(district):
    assert fingerprint(demo.generate(1)) == fingerprint(district)


def test_another_seed_gives_another_district(district):
    other = demo.generate(1, seed=7)
    assert shapely.to_wkb(other.units[0].geom) != shapely.to_wkb(district.units[0].geom)


def test_scale_one_has_urban_streets_a_town_communities_and_villages(district):
    counts = district.counts()
    streets = [u.code[6:9] for u in district.units if u.kind == "street"]
    assert len([s for s in streets if s.startswith("0")]) >= 2
    assert len([s for s in streets if s.startswith("1")]) >= 1
    assert counts["community"] >= 20
    assert counts["village"] >= 7
    grid_types = Counter(u.grid_type for u in district.units if u.kind == "grid")
    assert grid_types["community"] and grid_types["rural"] and grid_types["special"]


def test_scale_multiplies_the_district():
    one, two = demo.generate(1).counts(), demo.generate(2).counts()
    for kind in ("street", "community", "village"):
        assert two[kind] == 2 * one[kind]
    # scale 16 must give at least 10,000 micro-grids: 625 per unit of scale
    assert two["microgrid"] >= 2 * 625


def test_every_parent_is_tiled_exactly_by_its_children(district):
    children = children_of(district)
    parents = [u for u in district.units if u.code in children]
    assert {p.kind for p in parents} == {"district", "street", "community", "village", "grid"}
    for parent in parents:
        geoms = [c.geom for c in children[parent.code]]
        area = parent.geom.area
        assert sum(g.area for g in geoms) == pytest.approx(area, rel=1e-9), parent.code
        union = shapely.union_all(geoms)
        assert union.area == pytest.approx(area, rel=1e-9), parent.code
        assert union.symmetric_difference(parent.geom).area < area * 1e-9, parent.code
        tree = shapely.STRtree(geoms)
        meeting = {tuple(p) for p in tree.query(geoms, predicate="intersects").T if p[0] != p[1]}
        touching = {tuple(p) for p in tree.query(geoms, predicate="touches").T}
        assert meeting - touching == set(), f"children of {parent.code} overlap"


def test_every_geometry_is_a_valid_polygon_near_central_chengdu(district):
    for unit in district.units:
        assert unit.geom.geom_type == "Polygon" and unit.geom.is_valid, unit.code
    x0, y0, x1, y1 = district.units[0].geom.bounds
    assert 104.0 < x0 < x1 < 104.14 and 30.6 < y0 < y1 < 30.72


def test_households_add_up_within_the_usual_ranges(district):
    children = children_of(district)
    for unit in district.units:
        if unit.kind == "microgrid":
            assert 20 <= unit.households <= 100, unit.code
            assert 2.3 * unit.households - 0.5 <= unit.population <= 3.0 * unit.households + 0.5
        if unit.kind == "grid" and unit.grid_type != "special":
            assert 200 <= unit.households <= 500, unit.code
        if unit.code in children:
            assert unit.households == sum(c.households for c in children[unit.code])
            assert unit.population == sum(c.population for c in children[unit.code])


def test_rural_grids_are_larger_and_sparser(district):
    def density(grid_type):
        grids = [u for u in district.units if u.grid_type == grid_type]
        return sum(g.households for g in grids) / sum(g.geom.area for g in grids)

    assert density("rural") < density("community") / 3


def test_codes_are_well_formed_and_numbered_west_east_north_south(district):
    for unit in district.units:
        codes.validate_code(unit.kind, unit.code, unit.parent_code)
    for merge in district.merges:
        codes.validate_code("courtyard", merge.code, merge.code[:12])
    for siblings in children_of(district).values():
        if siblings[0].kind == "street":  # 街道 001… and towns 101… are numbered apart
            continue
        corners = [(u.rect.j0, u.rect.i0) for u in sorted(siblings, key=lambda u: u.code)]
        assert corners == sorted(corners)


def test_the_big_garden_is_eight_compounds_tiling_a_3_3_hectare_community(district):
    garden = next(u for u in district.units if u.name == "花园社区")
    compounds = [
        u for u in district.units if u.kind == "courtyard" and u.parent_code == garden.code
    ]
    assert len(compounds) == 8
    assert {"鞋厂院", "锅炉厂院", "法院院", "派出所院", "环保局院", "粮食局院", "学生公寓院"} <= {
        c.name for c in compounds
    }
    union = shapely.union_all([c.geom for c in compounds])
    assert union.geom_type == "Polygon"
    assert sum(c.geom.area for c in compounds) == pytest.approx(garden.geom.area, rel=1e-9)
    assert union.symmetric_difference(garden.geom).area < garden.geom.area * 1e-9
    hectares = abs(GEOD.geometry_area_perimeter(garden.geom)[0]) / 10_000
    assert 3.0 <= hectares <= 3.6
    (merge,) = district.merges
    assert merge.name == "大花园" and set(merge.sources) == {c.code for c in compounds}


def test_generated_staff_covers_every_role(district):
    held = {a.role for s in district.staff for a in s.assignments}
    assert held == set(Role.values)
    garden = district.merges[0].code
    at_garden = Counter(
        a.role for s in district.staff for a in s.assignments if a.unit_code == garden
    )
    assert at_garden == {"building_head": 18, "party_volunteer": 35}
    branches = Counter(b.kind for b in district.branches)
    assert branches["community_branch"] == 18 and branches["village_branch"] == 7
    assert branches["community_committee"] == 20 and branches["grid_branch"] > 0


# -- load_demo (database) -------------------------------------------------------------------
def row_counts() -> dict[str, int]:
    models = (
        Unit,
        BoundaryVersion,
        Lineage,
        StaffMember,
        StaffAssignment,
        PartyBranch,
        Workstation,
        Workstation.units.through,
        ServiceStation,
        get_user_model(),
    )
    return {m.__name__: m.objects.count() for m in models}


@pytest.mark.django_db
class TestLoadedDemo:
    """Loading takes a few seconds, so these share one load (see `loaded`)."""

    def test_the_database_holds_the_generated_district(self, loaded, district):
        in_db = Counter(Unit.objects.values_list("kind", flat=True))
        assert in_db == district.counts()
        for unit in Unit.objects.select_related("parent"):
            codes.validate_code(unit.kind, unit.code, unit.parent.code if unit.parent else None)
            assert unit.path == (unit.parent.path if unit.parent else "/") + unit.code + "/"
        assert BoundaryVersion.objects.count() == Unit.objects.count()
        grid = Unit.objects.get(code="510199001001001")
        assert grid.households == sum(grid.children.values_list("households", flat=True))

    def test_the_big_garden_has_its_merge_history(self, loaded):
        garden = Unit.objects.get(name="大花园")
        version = garden.current_version()
        assert version.change == ChangeKind.MERGED
        assert version.valid_from == demo.MERGED_ON
        sources = list(version.sources.select_related("unit"))
        assert len(sources) == 8
        assert {s.valid_to for s in sources} == {demo.MERGED_ON}
        assert {s.unit.retired_on for s in sources} == {demo.MERGED_ON}
        how = set(Lineage.objects.filter(to_version=version).values_list("how", flat=True))
        assert how == {ChangeKind.MERGED}
        assert garden.households == sum(s.households for s in sources)
        compound = sources[0]
        assert compound.valid_from < demo.MERGED_ON
        assert to_shapely(version.geom).contains(to_shapely(compound.geom).representative_point())

    def test_every_role_is_held_and_every_group_has_a_demo_login(self, loaded):
        today = datetime.date.today()
        held = set(StaffAssignment.objects.active_on(today).values_list("role", flat=True))
        assert held == set(Role.values)
        users = get_user_model().objects.filter(username__in=[u for u, *_ in demo.LOGINS])
        groups = {g for u in users for g in u.groups.values_list("name", flat=True)}
        assert groups == set(roles.GROUP_LABELS)
        assert users.get(username="chief").check_password(demo.DEMO_PASSWORD)
        assert len({u.password for u in users}) == 1  # the same password (hashing is slow)
        for username, _group, role, scope in demo.LOGINS:
            user = users.get(username=username)
            assert user.is_staff == (scope == "district")
            assignment = StaffAssignment.objects.get(member__user=user, role=role)
            assert assignment.unit.kind == scope
            assert username in loaded  # the table printed at the end
        police = StaffAssignment.objects.get(member__user__username="police").unit
        assert police.name == "花园社区"

    def test_stations_sit_inside_what_they_serve(self, loaded):
        assert Workstation.objects.filter(pilot=True).exists()
        assert Workstation.objects.filter(pilot=False).exists()
        geoms = {v.unit_id: to_shapely(v.geom) for v in BoundaryVersion.objects.current()}
        for station in Workstation.objects.prefetch_related("units"):
            served = [geoms[u.pk] for u in station.units.all()]
            point = shapely.Point(station.location.x, station.location.y)
            assert any(g.covers(point) for g in served), station.name
            (street,) = {u.path.split("/")[2] for u in station.units.all()}
            assert station.pilot == (street == "510199001000"), station.name  # pilot street
        for station in ServiceStation.objects.all():
            point = shapely.Point(station.location.x, station.location.y)
            assert geoms[station.unit_id].covers(point), station.name
        counts = Counter(PartyBranch.objects.values_list("kind", flat=True))
        assert (counts["community_branch"], counts["village_branch"]) == (18, 7)
        assert counts["community_committee"] == 20

    def test_loading_twice_changes_nothing(self, loaded):
        before = row_counts()
        out = io.StringIO()
        call_command("load_demo", stdout=out)
        assert row_counts() == before
        assert "already loaded" in out.getvalue()
        assert "weige-demo" in out.getvalue()

    def test_another_scale_is_refused(self, loaded):
        before = row_counts()
        with pytest.raises(CommandError, match="scale 1.*separate database"):
            call_command("load_demo", "--scale", "2", stdout=io.StringIO())
        assert row_counts() == before


@pytest.mark.django_db
def test_load_demo_refuses_taken_logins_and_writes_nothing(django_user_model):
    django_user_model.objects.create_superuser("admin", password="not-the-demo-one")
    with pytest.raises(CommandError, match="admin already exist"):
        call_command("load_demo", stdout=io.StringIO())
    assert Unit.objects.count() == 0


@pytest.mark.django_db
def test_load_demo_refuses_a_district_it_did_not_make(make_unit):
    make_unit("district", demo.DISTRICT_CODE, shapely.box(104.0, 30.6, 104.1, 30.7))
    with pytest.raises(CommandError, match="not made by load_demo"):
        call_command("load_demo", stdout=io.StringIO())
    assert Unit.objects.count() == 1


# -- grids.services.bulk ----------------------------------------------------------------------
def bulk_rows(community: str) -> list:
    from grids.services.bulk import UnitRow

    box = shapely.box(104.00, 30.60, 104.01, 30.61)
    return [
        UnitRow(
            "microgrid", f"{community}00301", "1号楼微网格", f"{community}003", box, households=40
        ),
        UnitRow("grid", f"{community}003", "第3网格", community, box, households=40),
        UnitRow("courtyard", f"{community}Y001", "锦苑小区", community, box),
    ]


@pytest.mark.django_db
def test_bulk_creates_children_of_existing_units_parents_first(small_territory):
    from grids.services.bulk import create_units_bulk

    community = small_territory["community"]
    created = create_units_bulk(
        bulk_rows(community.code), valid_from=datetime.date(2024, 6, 1), source="test"
    )
    micro = created[f"{community.code}00301"]
    assert micro.parent == created[f"{community.code}003"]
    assert micro.path == f"{community.path}{community.code}003/{micro.code}/"
    version = Unit.objects.get(code=micro.code).current_version()
    assert (version.source, version.households, version.parent_id) == ("test", 40, micro.parent.pk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda rows: rows[2].__setattr__("kind", "microgrid"), "cannot sit under"),
        (lambda rows: rows[0].__setattr__("code", rows[0].code + "1"), "must be"),
        (lambda rows: rows.append(rows[1]), "appears twice"),
        (lambda rows: rows[1].__setattr__("code", "510199001001001"), "already exist"),
        (lambda rows: rows[1].__setattr__("parent_code", "510199001009"), "not found"),
        (lambda rows: rows[2].__setattr__("geom", shapely.Point(104, 30.6)), "polygon"),
    ],
)
def test_bulk_writes_nothing_when_a_row_is_bad(small_territory, change, message):
    from grids.services.boundaries import TerritoryError
    from grids.services.bulk import create_units_bulk

    rows = bulk_rows(small_territory["community"].code)
    change(rows)
    before = Unit.objects.count()
    with pytest.raises((TerritoryError, codes.CodeError), match=message):
        create_units_bulk(rows, valid_from=datetime.date(2024, 6, 1))
    assert Unit.objects.count() == before
