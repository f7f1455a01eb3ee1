"""BulkGeotagger's fast paths agree with the single lookup (geotag_point), point by point."""

import datetime
import json

import numpy as np
import pytest
import shapely

from incidents.geotagging import BulkGeotagger, geotag_point
from tests.conftest import COMMUNITY, DISTRICT, STREET, rect

pytestmark = pytest.mark.django_db

AT = datetime.date(2025, 6, 1)
METRES = 111_320.0


def tricky_points(rng, n=400):
    """Random points, every vertex and edge midpoint of the territory, and points 0–8 m
    off the edges (inside and outside) — the cases of the three paths."""
    xs = list(rng.uniform(103.995, 104.025, n))
    ys = list(rng.uniform(30.595, 30.615, n))
    lines = [104.00, 104.01, 104.02]
    rows = [30.60, 30.605, 30.61]
    for x in lines:
        for y in rows:
            xs.append(x), ys.append(y)  # vertices
            xs.append(x), ys.append(y + 0.0025)  # on vertical edges
            xs.append(x + 0.005), ys.append(y)  # on horizontal edges
    per_deg_lon = METRES * np.cos(np.radians(30.605))
    for metres in (0.001, 0.5, 2.0, 4.9, 5.1, 8.0):
        for sign in (-1, 1):
            for y in rng.uniform(30.6001, 30.6099, 6):
                xs.append(104.01 + sign * metres / per_deg_lon), ys.append(y)
            for x in rng.uniform(104.0001, 104.0199, 6):
                xs.append(x), ys.append(30.605 + sign * metres / METRES)
    return np.array(xs), np.array(ys)


def assert_same(lons, lats, days_or_dates, at_of):
    bulk = BulkGeotagger().tag(lons, lats, days_or_dates)
    texts = bulk.candidate_texts()  # before bulk[i] makes the dicts
    with_candidates = [i for i in range(len(lons)) if bulk[i].candidates]
    assert sorted(texts) == with_candidates
    for i in with_candidates:  # the import stores this text: what intake's json.dumps writes
        assert texts[i] == json.dumps(bulk[i].candidates)
    for i, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
        one = geotag_point(float(lon), float(lat), at_of(i))
        tag = bulk[i]
        fields = ("street", "community", "grid", "microgrid", "version", "near_boundary")
        assert [getattr(tag, f) for f in fields] == [getattr(one, f) for f in fields], (lon, lat)
        # the same candidates with the same keys as the single lookup records
        assert sorted(tag.candidates, key=repr) == sorted(one.candidates, key=repr), (lon, lat)


def period_at(tagger, day):
    return tagger._period(int(np.searchsorted(tagger.breaks, day.toordinal(), side="right")))


def test_every_path_agrees_with_the_single_lookup(small_territory):
    lons, lats = tricky_points(np.random.default_rng(18))
    days = np.full(len(lons), AT.toordinal())
    assert_same(lons, lats, days, lambda i: AT)


def test_near_edges_the_candidates_come_from_the_edge_and_deep_points_have_none(
    small_territory,
):
    t = small_territory
    per_deg_lon = METRES * np.cos(np.radians(30.6075))
    lons = np.array([104.005, 104.01 - 3 / per_deg_lon, 104.01 - 6 / per_deg_lon])
    lats = np.array([30.6075, 30.6075, 30.6075])
    tags = BulkGeotagger().tag(lons, lats, [AT] * 3)
    assert not tags[0].near_boundary and tags[0].candidates == []
    near = tags[1]
    assert near.microgrid == t["micro11"].pk and near.near_boundary
    assert {(c["kind"], c["id"]) for c in near.candidates} == {
        ("grid", t["grid2"].pk),
        ("microgrid", t["micro21"].pk),
    }
    assert [c["distance_m"] for c in near.candidates] == [3.0, 3.0]
    assert not tags[2].near_boundary


def test_a_microgrid_sticking_out_of_its_grid_goes_through_the_rule(small_territory, make_unit):
    # Half of it lies in grid 2: the level-by-level rule decides there, not the shortcut.
    t = small_territory
    odd = make_unit(
        "microgrid",
        f"{t['grid1'].code}09",
        rect(104.008, 30.611, 104.012, 30.613),
        parent=t["grid1"],
    )
    tagger = BulkGeotagger()
    period = tagger._period(int(np.searchsorted(tagger.breaks, AT.toordinal(), side="right")))
    clean = dict(zip(tagger.unit_id[period.micro], period.clean, strict=True))
    assert not clean[odd.pk] and clean[t["micro11"].pk]
    lons, lats = tricky_points(np.random.default_rng(5), n=150)
    lons = np.concatenate([lons, [104.009, 104.011, 104.01]])
    lats = np.concatenate([lats, [30.612, 30.612, 30.612]])
    assert_same(lons, lats, [AT] * len(lons), lambda i: AT)


def test_points_at_different_dates_use_the_versions_of_their_date(small_territory, make_unit):
    later = datetime.date(2025, 9, 1)
    t = small_territory
    extra = make_unit(
        "microgrid",
        f"{t['grid2'].code}07",
        rect(104.03, 30.62, 104.04, 30.63),
        parent=t["grid2"],
        valid_from=later,
    )
    lons = np.array([104.035, 104.035, 104.005, 104.005])
    lats = np.array([30.625, 30.625, 30.607, 30.607])
    dates = [AT, later, AT, datetime.date(2023, 1, 1)]
    tags = BulkGeotagger().tag(lons, lats, dates)
    assert tags[0].unassigned
    assert tags[2].microgrid == t["micro11"].pk and tags[3].street is None
    assert_same(lons, lats, dates, lambda i: dates[i])
    assert tags[1].microgrid == extra.pk


def test_no_points_and_no_territory(db):
    tagger = BulkGeotagger()
    assert len(tagger.tag([], [], [])) == 0
    tags = tagger.tag([104.0], [30.6], [AT])
    assert tags[0].unassigned and tags[0].street is None


def test_points_with_no_micro_grid_edge_in_reach_are_farther_than_near_m_from_every_edge(
    small_territory,
):
    tagger = BulkGeotagger()
    period = period_at(tagger, AT)
    lons, lats = tricky_points(np.random.default_rng(11), n=3000)
    _k, near_edge = period._inside(period._edges(lons, lats), lons, lats)
    scale = np.array([METRES * np.cos(np.radians(30.61)), METRES])  # the most northern point
    day = AT.toordinal()
    valid = (tagger.valid_from <= day) & (day < tagger.valid_to)
    edges = shapely.union_all(shapely.boundary(tagger.geoms[valid]))
    points = shapely.points(np.column_stack([lons, lats]) * scale)
    metres = shapely.distance(shapely.transform(edges, lambda xy: xy * scale), points)
    deep = ~near_edge
    assert deep.sum() > 1000 and near_edge.sum() > 150
    assert np.all(metres[deep] > tagger.near_m)
    # and every point within near_m of an edge of a micro-grid has one in reach
    micro = shapely.union_all(shapely.boundary(tagger.geoms[valid & (tagger.level == 3)]))
    to_micro = shapely.distance(shapely.transform(micro, lambda xy: xy * scale), points)
    assert np.all(near_edge[to_micro <= tagger.near_m])


def test_each_edge_is_indexed_once_with_every_version_whose_rings_hold_it(small_territory):
    tagger = BulkGeotagger()
    period = period_at(tagger, AT)
    day = AT.toordinal()
    expected = {}  # segment, its ends in either order -> versions with it in a ring
    for v in np.flatnonzero((tagger.valid_from <= day) & (day < tagger.valid_to)):
        for ring in shapely.get_rings(shapely.get_parts(tagger.geoms[v])):
            coords = [tuple(c) for c in shapely.get_coordinates(ring)]
            for a, b in zip(coords, coords[1:], strict=False):
                expected.setdefault(frozenset((a, b)), set()).add(int(v))
    found = {}
    for i, (a, b) in enumerate(zip(period.seg_a, period.seg_b, strict=True)):
        key = frozenset((tuple(a), tuple(b)))
        assert key not in found  # each segment once
        found[key] = set(period.seg_owners[period.seg_start[i] : period.seg_start[i + 1]].tolist())
    assert found == expected
    # the territory's edges are shared by neighbours and by their grids, communities, streets
    assert sum(len(owners) > 1 for owners in found.values()) > len(found) / 2


@pytest.mark.parametrize("clockwise", [False, True])
def test_a_micro_grid_around_another_is_found_from_either_side_of_the_hole(make_unit, clockwise):
    # micro-grid "ring" is its grid with a hole, micro-grid "inner" fills the hole; rings
    # stored in either direction: the side of an edge that is inside follows the direction.
    def polygon(shell, holes=()):
        made = shapely.Polygon(shell, holes)
        return shapely.orient_polygons(made, exterior_cw=clockwise)

    district = make_unit("district", DISTRICT, rect(103.9, 30.5, 104.2, 30.8))
    street = make_unit("street", STREET, rect(103.99, 30.59, 104.03, 30.62), parent=district)
    community = make_unit("community", COMMUNITY, rect(104.00, 30.60, 104.02, 30.61), parent=street)
    code = f"{COMMUNITY}001"
    grid = make_unit("grid", code, rect(104.00, 30.60, 104.02, 30.61), parent=community)
    hole = [(104.008, 30.604), (104.012, 30.604), (104.012, 30.606), (104.008, 30.606)]
    outer = [(104.00, 30.60), (104.02, 30.60), (104.02, 30.61), (104.00, 30.61)]
    ring = make_unit("microgrid", f"{code}01", polygon(outer, [hole]), parent=grid)
    inner = make_unit("microgrid", f"{code}02", polygon(hole), parent=grid)
    per_deg_lon = METRES * np.cos(np.radians(30.605))
    lons, lats, expected = [], [], []
    for metres in (0.5, 2.0, 4.9, 5.1):
        for sign, unit in ((-1, inner), (1, ring)):  # west edge of the hole: inner is east
            lons.append(104.008 - sign * metres / per_deg_lon), lats.append(30.605)
            expected.append(unit.pk)
            lons.append(104.01), lats.append(30.606 + sign * metres / METRES)  # north edge
            expected.append(unit.pk)
    lons, lats = np.array(lons), np.array(lats)
    tagger = BulkGeotagger()
    period = period_at(tagger, AT)
    k, _near_edge = period._inside(period._edges(lons, lats), lons, lats)
    assert np.all(k >= 0)  # all settled by their nearest edge, none left to the rule
    assert tagger.unit_id[period.micro[k]].tolist() == expected
    assert_same(lons, lats, [AT] * len(lons), lambda i: AT)
