import datetime

import pytest

from gis.crs import wgs84_to_bd09, wgs84_to_gcj02
from grids.lookup import locate
from grids.services.boundaries import revise_unit
from tests.conftest import COMMUNITY, rect

pytestmark = pytest.mark.django_db


def codes(result):
    return [(u["kind"], u["code"]) for u in result["chain"]]


def test_point_gets_the_whole_chain(small_territory):
    result = locate(104.005, 30.607)
    t = small_territory
    assert codes(result) == [
        ("district", t["district"].code),
        ("street", t["street"].code),
        ("community", t["community"].code),
        ("grid", t["grid1"].code),
        ("microgrid", t["micro11"].code),
    ]
    assert result["near_boundary"] is False and result["neighbours"] == []
    first = result["chain"][-1]
    assert first["name"] == "第1网格第1微网格"
    assert first["boundary_version_id"] == t["micro11"].current_version().pk
    assert first["id"] == t["micro11"].pk


def test_point_on_shared_edge_gets_one_answer_and_is_flagged(small_territory):
    # lon 104.01 is the edge between grid 1 and grid 2
    result = locate(104.01, 30.607)
    grid = [u for u in result["chain"] if u["kind"] == "grid"][0]
    assert grid["code"] == f"{COMMUNITY}001"  # lowest code wins on an edge
    assert result["near_boundary"] is True
    neighbour_codes = {n["code"] for n in result["neighbours"]}
    assert f"{COMMUNITY}002" in neighbour_codes
    assert locate(104.01, 30.607) == result  # deterministic


def test_point_near_an_edge_lists_the_neighbour_with_distance(small_territory):
    # ~2 m west of the grid edge at lon 104.01 (1e-5° lon ≈ 0.96 m here)
    result = locate(104.01 - 2e-5, 30.603)
    grid = [u for u in result["chain"] if u["kind"] == "grid"][0]
    assert grid["code"] == f"{COMMUNITY}001"
    near = [n for n in result["neighbours"] if n["code"] == f"{COMMUNITY}002"][0]
    assert 1.5 < near["distance_m"] < 2.5
    far = locate(104.005, 30.603)
    assert far["near_boundary"] is False


def test_point_outside_everything_gets_an_empty_chain(small_territory):
    result = locate(120.0, 31.0)
    assert result == {"chain": [], "courtyard": None, "near_boundary": False, "neighbours": []}


def test_lookup_at_a_past_date_uses_the_version_then(small_territory):
    grid1 = small_territory["grid1"]
    revise_unit(
        grid1,
        geom=rect(104.00, 30.60, 104.012, 30.61),
        name="新第1网格",
        valid_from=datetime.date(2025, 1, 1),
    )
    revise_unit(
        small_territory["grid2"],
        geom=rect(104.012, 30.60, 104.02, 30.61),
        valid_from=datetime.date(2025, 1, 1),
    )
    now = locate(104.011, 30.607, datetime.date(2025, 6, 1))
    then = locate(104.011, 30.607, datetime.date(2024, 6, 1))
    grid_now = [u for u in now["chain"] if u["kind"] == "grid"][0]
    grid_then = [u for u in then["chain"] if u["kind"] == "grid"][0]
    assert grid_now["code"] == grid1.code and grid_now["name"] == "新第1网格"
    assert grid_then["code"] == small_territory["grid2"].code
    assert grid_then["boundary_version_id"] != grid_now["boundary_version_id"]
    before_anything = locate(104.011, 30.607, datetime.date(2020, 1, 1))
    assert before_anything["chain"] == []


def test_courtyard_is_reported_beside_the_chain(make_unit, small_territory):
    make_unit(
        "courtyard",
        f"{COMMUNITY}Y001",
        rect(104.001, 30.601, 104.003, 30.603),
        parent=small_territory["community"],
        name="鞋厂院",
    )
    result = locate(104.002, 30.602)
    assert result["courtyard"]["name"] == "鞋厂院"
    assert [u["kind"] for u in result["chain"]][-1] == "microgrid"


# --- the HTTP endpoint ------------------------------------------------------------------


@pytest.fixture
def api(client, django_user_model):
    user = django_user_model.objects.create_user("api", password="pw-123456")
    client.force_login(user)
    return client


def test_api_locate_returns_the_chain(api, small_territory):
    response = api.get("/api/locate", {"lon": 104.005, "lat": 30.607})
    assert response.status_code == 200
    body = response.json()
    assert [u["kind"] for u in body["chain"]] == [
        "district",
        "street",
        "community",
        "grid",
        "microgrid",
    ]
    assert body["query"]["crs"] == "wgs84"


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_api_converts_shifted_coordinates(api, small_territory, crs):
    lon, lat = 104.005, 30.607  # inside micro-grid 1-1 in WGS84
    convert = wgs84_to_gcj02 if crs == "gcj02" else wgs84_to_bd09
    slon, slat = convert(lon, lat)
    shifted = api.get("/api/locate", {"lon": slon, "lat": slat, "crs": crs}).json()
    assert shifted["chain"][-1]["code"] == small_territory["micro11"].code
    assert abs(shifted["wgs84"]["lon"] - lon) < 1e-6
    # the same numbers read as WGS84 land hundreds of metres away, in another micro-grid
    naive = api.get("/api/locate", {"lon": slon, "lat": slat}).json()
    assert naive["chain"][-1:] != shifted["chain"][-1:]


def test_api_at_date(api, small_territory):
    body = api.get("/api/locate", {"lon": 104.005, "lat": 30.607, "at": "2023-12-31"}).json()
    assert body["chain"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lat": 30.6}, "missing parameter lon"),
        ({"lon": "abc", "lat": 30.6}, "lon='abc' is not a number"),
        ({"lon": 181, "lat": 30.6}, "out of range -180..180"),
        ({"lon": 104, "lat": -91}, "out of range -90..90"),
        ({"lon": "nan", "lat": 30.6}, "finite"),
        ({"lon": 104, "lat": 30.6, "crs": "EPSG:3857"}, "not supported"),
        ({"lon": 104, "lat": 30.6, "at": "2024-13-01"}, "YYYY-MM-DD"),
    ],
)
def test_api_rejects_bad_input_with_a_message(api, params, message):
    response = api.get("/api/locate", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_api_needs_a_login(client, small_territory):
    assert client.get("/api/locate", {"lon": 104.005, "lat": 30.607}).status_code in (401, 403)
