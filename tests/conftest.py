"""Shared test factories. Every test builds its own small territory near Chengdu."""

import datetime

import pytest
import shapely

D2024 = datetime.date(2024, 1, 1)

# A fictional district code (6-digit county 510199) used throughout the tests.
DISTRICT = "510199000000"
STREET = "510199001000"
COMMUNITY = "510199001001"
VILLAGE = "510199001201"


def rect(x0: float, y0: float, x1: float, y1: float):
    """A rectangle in lon/lat degrees."""
    return shapely.box(x0, y0, x1, y1)


@pytest.fixture(autouse=True)
def english(settings):
    """Messages are asserted in English; the Chinese UI has its own tests."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def make_unit(db):
    """Create a unit with its first boundary version through the service."""
    from grids.services.boundaries import create_unit

    def make(kind, code, geom, *, parent=None, name=None, valid_from=D2024, **extra):
        return create_unit(
            kind=kind,
            code=code,
            name=name or f"{kind} {code}",
            geom=geom,
            valid_from=valid_from,
            parent=parent,
            **extra,
        )

    return make


@pytest.fixture
def small_territory(make_unit):
    """district ⊃ street ⊃ community ⊃ 2 grids (west/east) ⊃ 2 micro-grids each.

    The community is the box 104.00–104.02 × 30.60–30.61; grids split it at lon 104.01;
    micro-grids split each grid at lat 30.605.
    """
    district = make_unit("district", DISTRICT, rect(103.9, 30.5, 104.2, 30.8), name="锦宁区")
    street = make_unit(
        "street", STREET, rect(103.95, 30.55, 104.05, 30.65), parent=district, name="春熙街道"
    )
    community = make_unit(
        "community", COMMUNITY, rect(104.00, 30.60, 104.02, 30.61), parent=street, name="花园社区"
    )
    units = {"district": district, "street": street, "community": community}
    for g, (x0, x1) in enumerate([(104.00, 104.01), (104.01, 104.02)], start=1):
        grid = make_unit(
            "grid",
            f"{COMMUNITY}{g:03d}",
            rect(x0, 30.60, x1, 30.61),
            parent=community,
            name=f"第{g}网格",
            households=300,
        )
        units[f"grid{g}"] = grid
        for m, (y0, y1) in enumerate([(30.605, 30.61), (30.60, 30.605)], start=1):
            units[f"micro{g}{m}"] = make_unit(
                "microgrid",
                f"{grid.code}{m:02d}",
                rect(x0, y0, x1, y1),
                parent=grid,
                name=f"第{g}网格第{m}微网格",
                households=60,
            )
    return units


@pytest.fixture
def user_in(db, django_user_model):
    """A login assigned (as staff) to a unit with a role."""
    from grids.models import StaffAssignment, StaffMember

    def make(unit, role="grid_chief", username=None):
        user = django_user_model.objects.create_user(
            username=username or f"u{unit.code}{role}", password="pw-123456"
        )
        member = StaffMember.objects.create(name=username or "测试", user=user)
        StaffAssignment.objects.create(member=member, unit=unit, role=role, start=D2024)
        return user

    return make


@pytest.fixture
def seeded(db):
    """The seeded categories and login groups (migrations create them; a transactional test
    run earlier may have flushed them, so they are loaded again when missing)."""
    from grids.roles import sync_groups
    from incidents.categories import load_seed
    from incidents.models import Category

    if not Category.objects.filter(code="C0101").exists():
        load_seed()
        sync_groups()
    return Category.objects.all()
