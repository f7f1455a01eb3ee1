import datetime
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
from django.core.management import call_command

from grids.services.boundaries import revise_unit
from incidents.services.intake import Report, report_incident
from incidents.services.reassignment import reassign_open_incidents
from incidents.workflow import State
from tests.conftest import COMMUNITY, rect

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
REPORTED = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
CHANGE = datetime.date(2025, 7, 1)


def report(lon, lat, category):
    return report_incident(
        Report(lon=lon, lat=lat, category=category, source="patrol", reported_at=REPORTED)
    )


def move_border(territory, to_lon):
    """Move the border between grid 1 and grid 2 (and their micro-grids) to `to_lon`."""
    t = territory
    revise_unit(t["grid1"], geom=rect(104.00, 30.60, to_lon, 30.61), valid_from=CHANGE)
    revise_unit(t["grid2"], geom=rect(to_lon, 30.60, 104.02, 30.61), valid_from=CHANGE)
    revise_unit(t["micro11"], geom=rect(104.00, 30.605, to_lon, 30.61), valid_from=CHANGE)
    revise_unit(t["micro21"], geom=rect(to_lon, 30.605, 104.02, 30.61), valid_from=CHANGE)
    revise_unit(t["micro12"], geom=rect(104.00, 30.60, to_lon, 30.605), valid_from=CHANGE)
    revise_unit(t["micro22"], geom=rect(to_lon, 30.60, 104.02, 30.605), valid_from=CHANGE)
    return [t[k].pk for k in ("grid1", "grid2", "micro11", "micro12", "micro21", "micro22")]


def test_open_incidents_follow_the_new_boundary(small_territory, manhole):
    t = small_territory
    open_one = report(104.009, 30.607, manhole)  # in grid 1, will fall into grid 2
    closed_one = report(104.009, 30.6071, manhole)
    closed_one.state = State.CLOSED
    closed_one.save(update_fields=["state"])
    staying = report(104.002, 30.607, manhole)
    changed = move_border(t, 104.008)
    result = reassign_open_incidents(changed, on=CHANGE, reason="网格调整")
    assert result.moved == [open_one.pk]
    open_one.refresh_from_db()
    assert (open_one.grid, open_one.unit) == (t["grid2"], t["micro21"])
    assert open_one.boundary_version == t["micro21"].current_version()
    entry = open_one.timeline.get(action="reassigned")
    assert entry.note == "网格调整"
    assert entry.data["from"]["grid"] == t["grid1"].code
    assert entry.data["to"]["grid"] == t["grid2"].code
    closed_one.refresh_from_db()
    assert closed_one.grid == t["grid1"]  # history kept
    staying.refresh_from_db()
    assert staying.grid == t["grid1"] and not staying.timeline.filter(action="reassigned").exists()


def test_a_boundary_import_moves_open_incidents(small_territory, manhole, tmp_path):
    t = small_territory
    incident = report(104.009, 30.607, manhole)
    frame = gpd.GeoDataFrame(
        {
            "code": [t["grid1"].code, t["grid2"].code],
            "name": ["第1网格", "第2网格"],
            "parent": [COMMUNITY, COMMUNITY],
            "households": [300, 300],
            "geometry": [rect(104.00, 30.60, 104.008, 30.61), rect(104.008, 30.60, 104.02, 30.61)],
        },
        crs="EPSG:4326",
    )
    path = tmp_path / "grids.geojson"
    frame.to_file(path)
    call_command(
        "import_units", str(path), "--kind", "grid", "--valid-from", "2025-07-01", verbosity=0
    )
    micro = gpd.GeoDataFrame(
        {
            "code": [t[k].code for k in ("micro11", "micro12", "micro21", "micro22")],
            "name": ["一", "二", "三", "四"],
            "parent": [t["grid1"].code, t["grid1"].code, t["grid2"].code, t["grid2"].code],
            "geometry": [
                rect(104.00, 30.605, 104.008, 30.61),
                rect(104.00, 30.60, 104.008, 30.605),
                rect(104.008, 30.605, 104.02, 30.61),
                rect(104.008, 30.60, 104.02, 30.605),
            ],
        },
        crs="EPSG:4326",
    )
    micro_path = tmp_path / "micro.geojson"
    micro.to_file(micro_path)
    call_command(
        "import_units",
        str(micro_path),
        "--kind",
        "microgrid",
        "--valid-from",
        "2025-07-01",
        verbosity=0,
    )
    incident.refresh_from_db()
    assert (incident.grid, incident.unit) == (t["grid2"], t["micro21"])
    assert incident.timeline.filter(action="reassigned").exists()
