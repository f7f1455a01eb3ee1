import datetime

import numpy as np
import pytest

from incidents.geotagging import BulkGeotagger, geotag_point

pytestmark = pytest.mark.django_db

AT = datetime.date(2025, 6, 1)


def test_point_gets_every_level(small_territory):
    t = small_territory
    tag = geotag_point(104.005, 30.607, AT)
    assert (tag.street, tag.community, tag.grid, tag.microgrid) == (
        t["street"].pk,
        t["community"].pk,
        t["grid1"].pk,
        t["micro11"].pk,
    )
    assert tag.version == t["micro11"].current_version().pk
    assert not tag.unassigned and not tag.near_boundary


def test_outside_every_micro_grid_is_unassigned(small_territory):
    tag = geotag_point(104.03, 30.62, AT)  # in the street, outside the community
    assert tag.unassigned and tag.street == small_territory["street"].pk
    assert geotag_point(120.0, 31.0, AT).unassigned


def test_near_a_shared_edge_lists_both_candidates(small_territory):
    tag = geotag_point(104.01 - 2e-5, 30.603, AT)
    assert tag.near_boundary
    assert small_territory["grid2"].code in {c["code"] for c in tag.candidates}


def test_bulk_agrees_with_the_single_lookup(small_territory):
    rng = np.random.default_rng(7)
    lons = np.concatenate([rng.uniform(103.999, 104.021, 300), [104.01, 104.01 - 2e-5, 120.0]])
    lats = np.concatenate([rng.uniform(30.599, 30.611, 300), [30.607, 30.603, 31.0]])
    dates = [AT] * len(lons)
    bulk = BulkGeotagger().tag(lons, lats, dates)
    for lon, lat, tag in zip(lons, lats, bulk, strict=True):
        one = geotag_point(float(lon), float(lat), AT)
        assert (tag.street, tag.community, tag.grid, tag.microgrid, tag.version) == (
            one.street,
            one.community,
            one.grid,
            one.microgrid,
            one.version,
        ), (lon, lat)
        assert tag.near_boundary == one.near_boundary, (lon, lat)


def test_bulk_tags_each_point_at_its_own_date(small_territory):
    before = datetime.date(2023, 1, 1)  # the territory starts in 2024
    tags = BulkGeotagger().tag(
        np.array([104.005, 104.005]), np.array([30.607, 30.607]), [before, AT]
    )
    assert tags[0].unassigned and tags[0].street is None
    assert tags[1].microgrid == small_territory["micro11"].pk


def test_a_courtyard_wall_inside_a_micro_grid_is_not_a_unit_boundary(small_territory, make_unit):
    from tests.conftest import COMMUNITY, rect

    for n, (x0, x1) in enumerate([(104.001, 104.003), (104.003, 104.006)], start=1):
        make_unit(
            "courtyard",
            f"{COMMUNITY}Y{n:03d}",
            rect(x0, 30.606, x1, 30.608),
            parent=small_territory["community"],
            name=f"幸福{n}院",
        )
    # 1 m from the wall between the two courtyards, deep inside micro-grid 1-1
    lon, lat = 104.003 + 1 / 96_000, 30.607
    tag = geotag_point(lon, lat, AT)
    assert tag.microgrid == small_territory["micro11"].pk
    assert not tag.near_boundary and tag.candidates == []
    bulk = BulkGeotagger().tag(np.array([lon]), np.array([lat]), [AT])[0]
    assert (bulk.microgrid, bulk.near_boundary, bulk.candidates) == (tag.microgrid, False, [])
