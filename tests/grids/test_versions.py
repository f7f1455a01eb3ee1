import datetime

import pytest
import shapely

from grids.geometry import to_shapely
from grids.models import BoundaryVersion, ChangeKind, Lineage, Unit, VersionDeletionRefused
from grids.services.boundaries import TerritoryError, revise_unit
from grids.services.courtyards import merge_courtyards
from tests.conftest import COMMUNITY, rect

pytestmark = pytest.mark.django_db


def test_first_version_is_open_and_records_attributes(small_territory):
    grid = small_territory["grid1"]
    (version,) = grid.versions.all()
    assert version.valid_to is None
    assert version.change == ChangeKind.CREATED
    assert version.name == grid.name and version.households == 300
    assert grid.current_version() == version


def test_revision_closes_old_version_and_records_lineage(small_territory, admin_user):
    grid = small_territory["grid1"]
    old = grid.current_version()
    moved = rect(104.00, 30.60, 104.011, 30.61)
    revision = revise_unit(
        grid, geom=moved, valid_from=datetime.date(2025, 3, 1), user=admin_user, reason="边界调整"
    )
    assert revision.changed == ["geometry"]
    old.refresh_from_db()
    assert old.valid_to == datetime.date(2025, 3, 1)
    new = revision.version
    assert new.valid_to is None and new.change == ChangeKind.ADJUSTED
    assert new.created_by == admin_user and new.reason == "边界调整"
    assert list(new.sources.all()) == [old]
    assert Lineage.objects.get(to_version=new).how == ChangeKind.ADJUSTED
    assert shapely.equals(to_shapely(new.geom), moved)
    # the past is still answerable
    assert grid.version_at(datetime.date(2024, 6, 1)) == old
    assert grid.version_at(datetime.date(2025, 3, 1)) == new


def test_unchanged_revision_creates_nothing(small_territory):
    grid = small_territory["grid1"]
    same = shapely.Polygon(list(rect(104.00, 30.60, 104.01, 30.61).exterior.coords)[::-1])
    revision = revise_unit(grid, geom=same, name=grid.name, valid_from=datetime.date(2025, 1, 1))
    assert revision.version is None
    assert grid.versions.count() == 1


def test_attribute_change_is_a_version_too(small_territory):
    grid = small_territory["grid1"]
    revision = revise_unit(grid, households=320, valid_from=datetime.date(2025, 1, 1))
    assert revision.changed == ["households"]
    assert revision.version.change == ChangeKind.ATTRIBUTES
    grid.refresh_from_db()
    assert grid.households == 320
    assert grid.version_at(datetime.date(2024, 12, 31)).households == 300


def test_versions_are_never_deleted(small_territory):
    version = small_territory["grid1"].current_version()
    with pytest.raises(VersionDeletionRefused):
        version.delete()
    with pytest.raises(VersionDeletionRefused):
        BoundaryVersion.objects.all().delete()
    assert BoundaryVersion.objects.filter(pk=version.pk).exists()


def test_revision_cannot_start_before_the_current_version(small_territory):
    with pytest.raises(TerritoryError, match="cannot start"):
        revise_unit(small_territory["grid1"], households=1, valid_from=datetime.date(2020, 1, 1))


def test_a_grid_cannot_sit_directly_under_a_street(make_unit, small_territory):
    with pytest.raises(TerritoryError, match="cannot sit under street"):
        make_unit(
            "grid",
            "510199001000001",
            rect(104.0, 30.6, 104.001, 30.601),
            parent=small_territory["street"],
        )


def test_duplicate_code_is_refused(make_unit, small_territory):
    with pytest.raises(TerritoryError, match="already exists"):
        make_unit(
            "grid",
            small_territory["grid1"].code,
            rect(104.0, 30.6, 104.001, 30.601),
            parent=small_territory["community"],
        )


@pytest.fixture
def compounds(make_unit, small_territory):
    """Eight walled compounds tiling 104.000–104.004 × 30.600–30.602 in a 4×2 lattice."""
    community = small_territory["community"]
    xs = [104.0 + k * 0.001 for k in range(5)]
    ys = [30.600 + k * 0.001 for k in range(3)]
    units = []
    for i in range(8):
        col, row = i % 4, i // 4
        units.append(
            make_unit(
                "courtyard",
                f"{COMMUNITY}Y{i + 1:03d}",
                rect(xs[col], ys[row], xs[col + 1], ys[row + 1]),
                parent=community,
                name=f"院落{i + 1}",
                households=40 + i,
                valid_from=datetime.date(2015, 1, 1),
            )
        )
    return units


def test_merging_eight_compounds_makes_one_big_garden(compounds, admin_user):
    merged_on = datetime.date(2021, 5, 1)
    garden = merge_courtyards(
        compounds,
        code=f"{COMMUNITY}Y100",
        name="大花园",
        valid_from=merged_on,
        user=admin_user,
        reason="拆墙并院",
    )
    version = garden.current_version()
    assert version.change == ChangeKind.MERGED
    assert shapely.equals(to_shapely(version.geom), rect(104.0, 30.6, 104.004, 30.602))
    assert to_shapely(version.geom).geom_type == "MultiPolygon"
    assert len(to_shapely(version.geom).geoms) == 1
    assert garden.households == sum(40 + i for i in range(8))
    assert garden.parent == compounds[0].parent
    sources = list(version.sources.order_by("unit__code"))
    assert [s.unit.code for s in sources] == [c.code for c in compounds]
    assert all(s.valid_to == merged_on for s in sources)
    assert set(Lineage.objects.filter(to_version=version).values_list("how", flat=True)) == {
        ChangeKind.MERGED
    }
    for compound in compounds:
        compound.refresh_from_db()
        assert compound.retired_on == merged_on
        assert compound.version_at(datetime.date(2020, 1, 1)) is not None
        assert compound.version_at(merged_on) is None


def test_merge_refuses_non_contiguous_courtyards(compounds):
    with pytest.raises(TerritoryError, match="not contiguous"):
        merge_courtyards(
            [compounds[0], compounds[2]],
            code=f"{COMMUNITY}Y100",
            name="x",
            valid_from=datetime.date(2021, 5, 1),
        )
    assert Unit.objects.filter(code=f"{COMMUNITY}Y100").count() == 0
    assert compounds[0].current_version() is not None  # nothing was closed


def test_merge_can_be_forced(compounds):
    garden = merge_courtyards(
        [compounds[0], compounds[2]],
        code=f"{COMMUNITY}Y100",
        name="x",
        valid_from=datetime.date(2021, 5, 1),
        force=True,
    )
    assert to_shapely(garden.current_version().geom).geom_type == "MultiPolygon"


def test_merge_refuses_courtyards_of_different_communities(make_unit, small_territory, compounds):
    other = make_unit(
        "community",
        "510199001002",
        rect(104.02, 30.60, 104.03, 30.61),
        parent=small_territory["street"],
    )
    foreign = make_unit(
        "courtyard",
        "510199001002Y001",
        rect(104.004, 30.600, 104.005, 30.601),
        parent=other,
        valid_from=datetime.date(2015, 1, 1),
    )
    with pytest.raises(TerritoryError, match="different communities"):
        merge_courtyards(
            [compounds[3], foreign],
            code=f"{COMMUNITY}Y100",
            name="x",
            valid_from=datetime.date(2021, 5, 1),
        )
