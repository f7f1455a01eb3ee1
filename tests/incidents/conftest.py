import pytest

from incidents.models import Category


@pytest.fixture
def manhole():
    """Category C0101 (manhole covers): urgent 2, normal 8 working hours; duplicate radius
    30 m. Seeded by migrations; a transactional test run before may have flushed it."""
    from grids.roles import sync_groups
    from incidents.categories import load_seed

    if not Category.objects.filter(code="C0101").exists():
        load_seed()
        sync_groups()
    return Category.objects.get(code="C0101")
