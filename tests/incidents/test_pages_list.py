"""The incident list page and its CSV export: filters, scope, sorting, paging, errors."""

import csv
import datetime
import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import Category, Incident
from incidents.services.intake import Report, report_incident
from incidents.workflow import State
from tests.conftest import rect

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
MONDAY_9 = datetime.datetime(2025, 6, 9, 9, 0, tzinfo=SH)
OTHER_COMMUNITY = "510199001002"
# Points: grid 1 micro 1, grid 2 micro 2 of the small territory; the other community.
WEST = (104.005, 30.607)
EAST = (104.015, 30.602)
OTHER = (104.03, 30.605)


def report(where, code="C0101", **fields) -> Incident:
    lon, lat = where
    fields.setdefault("reported_at", timezone.now())
    return report_incident(
        Report(
            lon=lon,
            lat=lat,
            category=Category.objects.get(code=code),
            source=fields.pop("source", "patrol"),
            **fields,
        )
    )


def set_state(incident, state) -> None:
    Incident.objects.filter(pk=incident.pk).update(state=state)


def numbers(response) -> list[int]:
    """The incident numbers in the list table, in order."""
    return [int(n) for n in re.findall(r'<td><a href="/incidents/(\d+)/">#', response.text)]


@pytest.fixture
def territory(small_territory, make_unit, seeded):
    units = dict(small_territory)
    units["other"] = make_unit(
        "community",
        OTHER_COMMUNITY,
        rect(104.02, 30.60, 104.04, 30.61),
        parent=small_territory["street"],
        name="河畔社区",
    )
    return units


@pytest.fixture
def chief(client, territory, user_in):
    """A user of the 花园 community, logged in."""
    user = user_in(territory["community"], "grid_chief", username="garden")
    client.force_login(user)
    return user


@pytest.fixture
def mixed(territory):
    """Incidents differing in every filtered field, by name."""
    now = timezone.now()
    late = report(WEST, "C0101", reported_at=MONDAY_9, description="井盖缺失")
    fresh = report(EAST, "E0501", reporter_phone="13812345678", description="无照游商")
    # past the deadline, not yet three times over it
    due = report(EAST, "C0104", source="resident", reporter_name="王五")
    Incident.objects.filter(pk=due.pk).update(
        deadline=now - datetime.timedelta(hours=1), overdue_3x_at=now + datetime.timedelta(days=2)
    )
    closed = report(WEST, "C0101", reported_at=MONDAY_9 + datetime.timedelta(days=2))
    set_state(closed, State.CLOSED)
    police = report(WEST, "E0404")  # fire: police relevant
    elsewhere = report(OTHER, "C0101", description="井盖缺失")
    return {
        "late": late,
        "fresh": fresh,
        "due": due,
        "closed": closed,
        "police": police,
        "elsewhere": elsewhere,
    }


def test_list_shows_only_incidents_in_the_users_scope(client, chief, mixed):
    response = client.get("/incidents/")
    assert response.status_code == 200
    shown = set(numbers(response))
    assert mixed["elsewhere"].pk not in shown
    assert shown == {i.pk for name, i in mixed.items() if name != "elsewhere"}
    assert "5 incidents" in response.text


def test_list_of_a_user_in_the_other_community_shows_only_theirs(client, territory, user_in, mixed):
    client.force_login(user_in(territory["other"], "grid_chief", username="river"))
    assert numbers(client.get("/incidents/")) == [mixed["elsewhere"].pk]
    # the other community's code as a filter does not widen the scope
    assert numbers(client.get("/incidents/", {"unit": territory["community"].code})) == []


def test_a_filter_without_matches_says_so(client, chief, mixed):
    response = client.get("/incidents/", {"q": "没有这样的事件"})
    assert response.status_code == 200
    assert numbers(response) == []
    assert "0 incidents" in response.text and "No incidents match." in response.text
    assert "/incidents/export.csv?q=" in response.text  # the (empty) export is still offered


def test_anonymous_users_are_sent_to_the_login_page(client, territory):
    for url in ("/incidents/", "/incidents/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "C0101"}, {"late", "closed"}),
        ({"major": "C01"}, {"late", "closed", "due"}),
        ({"major": "E05"}, {"fresh"}),
        ({"major": "04"}, {"police"}),
        ({"state": ["closed"]}, {"closed"}),
        ({"state": ["closed", "reported"]}, {"late", "fresh", "due", "closed", "police"}),
        ({"overdue": "1"}, {"late", "due"}),
        ({"overdue": "3x"}, {"late"}),
        ({"overdue": "0"}, {"fresh", "closed", "police"}),
        ({"from": "2025-06-10", "to": "2025-06-11"}, {"closed"}),
        ({"to": "2025-06-11"}, {"late", "closed"}),
        ({"police_relevant": "1"}, {"police"}),
        ({"source": "resident"}, {"due"}),
        ({"q": "游商"}, {"fresh"}),
        ({"q": "王五"}, {"due"}),
    ],
)
def test_each_filter_narrows_the_list(client, chief, mixed, params, expected):
    response = client.get("/incidents/", params)
    assert response.status_code == 200
    assert set(numbers(response)) == {mixed[name].pk for name in expected}


def test_unit_filter_takes_that_unit_and_everything_below_it(client, chief, territory, mixed):
    grid1 = territory["grid1"]
    west = {mixed[n].pk for n in ("late", "closed", "police")}
    assert set(numbers(client.get("/incidents/", {"unit": grid1.code}))) == west
    micro = territory["micro11"]  # a micro-grid code typed in, not one of the offered units
    assert set(numbers(client.get("/incidents/", {"unit": micro.code}))) == west
    everything = {i.pk for n, i in mixed.items() if n != "elsewhere"}
    community = client.get("/incidents/", {"unit": territory["community"].code})
    assert set(numbers(community)) == everything


def test_free_text_finds_an_incident_by_its_number(client, chief, mixed):
    for q in (str(mixed["due"].pk), f"#{mixed['due'].pk}"):
        assert mixed["due"].pk in numbers(client.get("/incidents/", {"q": q}))


def test_the_filter_form_offers_scoped_units_and_categories_by_major_class(
    client, chief, territory, mixed
):
    page = client.get("/incidents/").text
    assert f'<option value="{territory["grid1"].code}">' in page
    assert territory["other"].code not in page  # not in this user's scope
    assert territory["micro11"].code not in page  # offered down to grid level only
    assert '<optgroup label="C01 公用设施">' in page
    assert '<option value="C0101">C0101 井盖</option>' in page
    chosen = client.get("/incidents/", {"state": ["closed", "handled"], "overdue": "3x"}).text
    assert '<option value="closed" selected>' in chosen
    assert '<option value="handled" selected>' in chosen
    assert '<option value="3x" selected>' in chosen


def test_rows_show_masked_phone_units_badges_and_flags(client, chief, territory, mixed):
    page = client.get("/incidents/").text
    assert "138****5678" in page and "13812345678" not in page
    assert territory["grid1"].name in page and territory["micro11"].name in page
    row = re.search(rf'href="/incidents/{mixed["late"].pk}/".*?</tr>', page, re.S).group(0)
    assert "3× overdue" in row
    row = re.search(rf'href="/incidents/{mixed["due"].pk}/".*?</tr>', page, re.S).group(0)
    assert "overdue" in row and "3× overdue" not in row
    row = re.search(rf'href="/incidents/{mixed["fresh"].pk}/".*?</tr>', page, re.S).group(0)
    assert "overdue" not in row


def test_near_boundary_and_unassigned_flags_are_shown(client, chief, mixed):
    Incident.objects.filter(pk=mixed["fresh"].pk).update(near_boundary=True, unassigned=True)
    page = client.get("/incidents/").text
    row = re.search(rf'href="/incidents/{mixed["fresh"].pk}/".*?</tr>', page, re.S).group(0)
    assert "near a boundary" in row and "unassigned" in row


def test_the_flag_filter_lists_what_awaits_a_unit_decision(client, territory, user_in, mixed):
    """A district administrator finds the incidents outside every micro-grid and those on a
    shared boundary; both flags come from geotagging, not from the test."""
    on_the_line = report((104.01001, 30.607))  # 1 m east of the grid 1 / grid 2 boundary
    outside = report((105.5, 31.5))
    assert on_the_line.near_boundary and outside.unassigned
    client.force_login(user_in(territory["district"], "district_admin", username="admin"))
    # "elsewhere" lies in a community without micro-grids: unassigned too
    unassigned = {outside.pk, mixed["elsewhere"].pk}
    assert set(numbers(client.get("/incidents/", {"flag": "unassigned"}))) == unassigned
    assert numbers(client.get("/incidents/", {"flag": "near_boundary"})) == [on_the_line.pk]
    page = client.get("/incidents/", {"flag": "unassigned"}).text
    assert '<option value="unassigned" selected>' in page
    assert len(numbers(client.get("/incidents/"))) == len(mixed) + 2


def test_sorting_by_a_column_header_toggles_and_keeps_the_filters(client, chief, mixed):
    ascending = client.get("/incidents/", {"sort": "deadline", "overdue": "0"})
    rows = Incident.objects.filter(pk__in=numbers(ascending))
    by_deadline = [i.pk for i in rows.order_by("deadline", "id")]
    assert numbers(ascending) == by_deadline
    # the header of the sorted column now asks for the other direction, with the filter
    assert 'href="?sort=-deadline&amp;overdue=0"' in ascending.text
    descending = client.get("/incidents/", {"sort": "-deadline", "overdue": "0"})
    assert numbers(descending) == by_deadline[::-1]
    assert 'href="?sort=deadline&amp;overdue=0"' in descending.text


def test_default_order_is_newest_first(client, chief, mixed):
    shown = numbers(client.get("/incidents/"))
    expected = Incident.objects.filter(pk__in=shown).order_by("-reported_at", "-id")
    assert shown == [i.pk for i in expected]


@pytest.fixture
def many(territory):
    """55 incidents in the 花园 community (copies of one report, an hour apart)."""
    first = report(WEST, "C0101", reported_at=MONDAY_9, description="批量")
    for n in range(1, 55):
        first.pk = None
        first.reported_at = MONDAY_9 + datetime.timedelta(hours=n)
        first.save()
    return Incident.objects.filter(description="批量")


def test_pages_of_fifty_keep_filters_and_sort(client, chief, many):
    params = {"q": "批量", "sort": "reported_at"}
    first = client.get("/incidents/", params)
    assert "55 incidents" in first.text
    ordered = [i.pk for i in many.order_by("reported_at", "id")]
    assert numbers(first) == ordered[:50]
    assert "page 1 of 2" in first.text
    assert 'href="?q=%E6%89%B9%E9%87%8F&amp;sort=reported_at&amp;page=2"' in first.text
    second = client.get("/incidents/", {**params, "page": "2"})
    assert numbers(second) == ordered[50:]


def test_the_list_makes_the_same_number_of_queries_for_5_or_55_rows(
    client, chief, territory, django_assert_max_num_queries
):
    report(WEST, "C0101")
    report(EAST, "E0501")
    with CaptureQueriesContext(connection) as few:
        assert len(numbers(client.get("/incidents/"))) == 2
    first = report(WEST, "C0104")
    for _n in range(50):
        first.pk = None
        first.save()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(numbers(client.get("/incidents/"))) == 50


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "bogus"}, "state=&#x27;bogus&#x27; is not one of"),
        ({"unit": "999"}, "unit=&#x27;999&#x27;: no unit has this code"),
        ({"from": "yesterday"}, "from=&#x27;yesterday&#x27; is not a date"),
        ({"sort": "phone"}, "sort=&#x27;phone&#x27; is not one of"),
        ({"major": "X1"}, "major=&#x27;X1&#x27; must be two digits"),
        ({"flag": "late"}, "flag=&#x27;late&#x27; is not one of unassigned, near_boundary"),
    ],
)
def test_a_bad_filter_value_is_a_400_with_the_message_above_the_form(
    client, chief, mixed, params, message
):
    response = client.get("/incidents/", params)
    assert response.status_code == 400
    page = response.text
    assert message in page
    assert page.index(message) < page.index('<form method="get"')
    assert numbers(response) == []


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_csv_export_has_every_filtered_row_not_just_one_page(client, chief, many):
    response = client.get("/incidents/export.csv", {"q": "批量", "sort": "reported_at"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    header, *rows = csv_rows(response)
    assert header[:3] == ["number", "category code", "major class name"]
    assert [int(r[0]) for r in rows] == [i.pk for i in many.order_by("reported_at", "id")]
    assert rows[0][header.index("reported at")] == "2025-06-09T09:00:00+08:00"


def test_csv_export_masks_phones_and_applies_the_scope_and_filters(client, chief, mixed):
    header, *rows = csv_rows(client.get("/incidents/export.csv", {"overdue": "1"}))
    assert {int(r[0]) for r in rows} == {mixed["late"].pk, mixed["due"].pk}
    header, *rows = csv_rows(client.get("/incidents/export.csv"))
    numbers_in_csv = {int(r[0]) for r in rows}
    assert mixed["elsewhere"].pk not in numbers_in_csv and len(rows) == 5
    fresh = next(r for r in rows if int(r[0]) == mixed["fresh"].pk)
    assert fresh[header.index("reporter phone")] == "138****5678"
    assert fresh[header.index("community/village")] == "花园社区"
    assert fresh[header.index("state")] == "reported"


def test_csv_export_neutralises_formulas(client, chief, territory):
    report(WEST, "C0101", description='=HYPERLINK("http://evil","x")')
    header, row = csv_rows(client.get("/incidents/export.csv"))
    assert row[header.index("description")] == '\'=HYPERLINK("http://evil","x")'


def test_csv_header_is_in_the_users_language(client, chief, mixed, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    header, *rows = csv_rows(client.get("/incidents/export.csv", HTTP_ACCEPT_LANGUAGE="zh-hans"))
    assert "上报时间" in header and "处置时限" in header and "reported at" not in header


def test_csv_export_of_a_bad_filter_is_a_400(client, chief, mixed):
    response = client.get("/incidents/export.csv", {"overdue": "maybe"})
    assert response.status_code == 400
    assert "overdue='maybe' must be 1 or 0" in response.content.decode()


def test_the_export_link_carries_the_current_filters(client, chief, mixed):
    page = client.get("/incidents/", {"state": ["closed", "reported"], "page": "1"}).text
    assert 'href="/incidents/export.csv?state=closed&amp;state=reported"' in page
