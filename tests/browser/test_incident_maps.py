"""The incident page's map and the report form's picker map, in Chromium."""

import pytest

from grids.models import Role
from grids.roles import GRID_CHIEF, GRID_MEMBER
from incidents.models import Category
from incidents.services.intake import Report, report_incident
from incidents.views.detail import map_boundaries
from tests.browser.helpers import (
    MARKERS,
    OVERLAY_PATHS,
    assert_clean,
    click_map_at,
    count,
    count_markers,
    count_paths,
    hover_tooltip,
    wait_for_count,
)
from tests.incidents.test_extensions import login

NEAR_EDGE = (104.00999, 30.607)  # micro-grid 11, a metre from micro-grid 21


@pytest.fixture
def people(django_user_model, seeded, small_territory):
    t = small_territory
    return {
        "chief": login(django_user_model, "chief", GRID_CHIEF, t["community"], Role.GRID_CHIEF),
        "member": login(django_user_model, "member", GRID_MEMBER, t["grid1"], Role.FULLTIME_MEMBER),
    }


def report(lon=104.005, lat=30.607, code="C0101"):
    return report_incident(
        Report(lon=lon, lat=lat, category=Category.objects.get(code=code), source="patrol")
    )


def test_the_incident_map_draws_the_point_and_its_units(page_for, people):
    incident = report()
    page = page_for(people["chief"])
    page.goto(f"/incidents/{incident.pk}/")
    # micro-grid 11, grid 1 and the point (a circle marker)
    wait_for_count(page, OVERLAY_PATHS, 3)
    assert count_markers(page) == 0
    point = page.locator(f"{OVERLAY_PATHS}[fill='#0b5cad']")
    tooltip = hover_tooltip(point)
    assert tooltip.inner_text().strip() == f"#{incident.pk} {incident.category.name}"
    assert_clean(page)


def test_a_near_boundary_incident_shows_its_candidate_units_too(page_for, people):
    incident = report(*NEAR_EDGE)
    boundaries = map_boundaries(incident)
    assert [b.role for b in boundaries].count("candidate") >= 1
    page = page_for(people["chief"])
    page.goto(f"/incidents/{incident.pk}/")
    wait_for_count(page, OVERLAY_PATHS, len(boundaries) + 1)
    assert_clean(page)


def test_clicking_the_report_map_fills_the_point_and_suggests_duplicates(
    page_for, people, small_territory
):
    existing = report()
    page = page_for(people["member"])
    page.goto("/incidents/new")
    # the member's grid and its two micro-grids
    wait_for_count(page, OVERLAY_PATHS, 3)
    assert count_markers(page) == 0
    page.select_option("#id_crs", "gcj02")
    page.select_option("#id_category", "C0101")

    click_map_at(page, 104.0051, 30.6071)

    wait_for_count(page, MARKERS, 1)
    assert page.input_value("#id_crs") == "wgs84"
    lon, lat = float(page.input_value("#id_lon")), float(page.input_value("#id_lat"))
    assert abs(lon - 104.0051) < 5e-5 and abs(lat - 30.6071) < 5e-5  # a pixel or two
    wait_for_count(page, "#duplicates-list li", 1)
    assert page.locator("#duplicates h2").is_visible()
    assert page.locator(".field-not_duplicate").is_visible()
    link = page.locator("#duplicates-list li a")
    assert link.inner_text() == f"#{existing.pk}"
    assert count_paths(page) == 3
    assert_clean(page)

    link.click()
    page.wait_for_url(f"**/incidents/{existing.pk}/")
    wait_for_count(page, OVERLAY_PATHS, 3)
    assert_clean(page)


def test_a_point_far_from_open_incidents_suggests_none(page_for, people):
    report()
    page = page_for(people["member"])
    page.goto("/incidents/new")
    wait_for_count(page, OVERLAY_PATHS, 3)
    page.select_option("#id_category", "C0101")
    with page.expect_response(lambda r: "/api/incidents/duplicates?" in r.url) as answer:
        click_map_at(page, 104.0015, 30.6015)
    assert answer.value.ok
    assert count(page, "#duplicates-list li") == 0
    assert page.locator("#duplicates h2").is_hidden()
    assert_clean(page)


@pytest.mark.parametrize(
    "url", ["/incidents/", "/incidents/supervision", "/incidents/kpis", "/", "/maps/coverage/"]
)
def test_on_a_phone_wide_tables_scroll_inside_the_page(page_for, people, url):
    """390 px wide (a grid member's phone): the page itself does not scroll sideways."""
    for _ in range(3):
        report()
    page = page_for(people["chief"], locale="zh-CN", viewport={"width": 390, "height": 800})
    page.goto(url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_clean(page)
