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
