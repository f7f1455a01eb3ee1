"""The demo incidents: a deterministic plan over the demo district, written by `load_demo`
with timelines that follow the workflow, geotags and deadlines as intake would set them."""

import datetime
import io
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fixtures import demo_incidents
from incidents.geotagging import geotag_point
from incidents.models import Category, DispatchRule, Incident, TimelineEntry
from incidents.services.transitions import roles_of
from incidents.workflow import FINAL_STATES, OPEN_STATES, check

COUNT = 600


@pytest.fixture(scope="class")
def loaded(django_db_setup, django_db_blocker):
    """The scale-1 demo with COUNT incidents, loaded once for a test class and rolled back."""
    with django_db_blocker.unblock(), transaction.atomic():
        out = io.StringIO()
        call_command("load_demo", "--incidents", str(COUNT), stdout=out, stderr=io.StringIO())
        yield out.getvalue()
        transaction.set_rollback(True)


def fingerprint(plans) -> list:
    return [
        (
            p.lon,
            p.lat,
            p.category,
            p.source,
            p.description,
            p.reporter_name,
            p.reporter_phone,
            p.urgent,
            p.reported_at,
            p.deadline,
            p.overdue_3x_at,
            p.duplicate_of,
            [(s.action, s.at, s.actor, s.from_state, s.to_state, s.note, s.data) for s in p.steps],
        )
        for p in plans
    ]


def timelines() -> dict[int, list[TimelineEntry]]:
    result: dict[int, list[TimelineEntry]] = {}
    for entry in TimelineEntry.objects.select_related("actor").order_by("incident_id", "at", "id"):
        result.setdefault(entry.incident_id, []).append(entry)
    return result


@pytest.mark.django_db
class TestDemoIncidents:
    def test_the_same_seed_plans_the_same_incidents(self, loaded):
        micro, district = demo_incidents.territory()
        categories = list(Category.objects.all())
        day = datetime.date(2025, 3, 14)

        def plan(seed):
            return demo_incidents.generate(micro, district, categories, 300, today=day, seed=seed)

        first = fingerprint(plan(7))
        assert first == fingerprint(plan(7))
        assert first != fingerprint(plan(8))
        horizon = demo_incidents.horizon_of(day)
        assert all(s[1] < horizon for p in first for s in p[-1])

    def test_load_demo_writes_the_incidents_and_prints_counts_per_state(self, loaded):
        incidents = Incident.objects.filter(external_id__startswith=demo_incidents.EXTERNAL_PREFIX)
        assert incidents.count() == Incident.objects.count() == COUNT
        states = Counter(incidents.values_list("state", flat=True))
        assert "incidents by state:" in loaded
        for state, n in states.items():
            assert f"{state} {n:,}" in loaded
        assert len(states) >= 8
        assert states["closed"] > COUNT / 3
        assert {"void", "duplicate", "reported", "in_progress"} <= set(states)
        now = timezone.now()
        open_ = incidents.filter(state__in=OPEN_STATES)
        assert open_.filter(deadline__lt=now).exists()
        assert open_.filter(overdue_3x_at__lte=now).exists()
        assert (
            open_.filter(deadline__gt=now).exists()
            or open_.filter(reported_at__gte=now - datetime.timedelta(days=3)).exists()
        )
        police = incidents.filter(category__police_relevant=True)
        assert police.exists() and incidents.filter(category__major__in=("08", "09")).exists()
        assert set(incidents.values_list("source", flat=True)) >= {
            "patrol",
            "resident",
            "hotline_12345",
        }

    def test_every_timeline_follows_the_workflow_and_matches_the_incident(self, loaded):
        roles = {u.pk: roles_of(u) for u in get_user_model().objects.all()}
        horizon = demo_incidents.horizon_of(timezone.localdate())
        entries = timelines()
        for incident in Incident.objects.all():
            timeline = entries[incident.pk]
            first, *rest = timeline
            assert (first.action, first.to_state) == ("report", "reported")
            assert first.at == incident.reported_at
            assert first.data == {
                "unassigned": incident.unassigned,
                "near_boundary": incident.near_boundary,
            }
            state, transitions, closed_at = "reported", 0, None
            for entry in rest:
                assert entry.at < horizon
                assert entry.from_state == state, incident.pk
                if entry.action == "duplicate_linked":
                    assert entry.to_state == state
                    continue
                step = check(entry.action, state, roles[entry.actor_id], entry.note)
                assert entry.to_state == step.target
                state, transitions = entry.to_state, transitions + 1
                if state in FINAL_STATES:
                    closed_at = entry.at
            assert incident.state == state == timeline[-1].to_state
            assert incident.lock_version == transitions
            assert incident.closed_at == closed_at
            assert [e.at for e in timeline] == sorted(e.at for e in timeline)

    def test_deadlines_and_extensions_are_those_of_the_intake_code(self, loaded):
        from incidents.services.intake import deadline_fields, deadline_for
        from incidents.working_time import WorkingCalendar

        calendar = WorkingCalendar.from_settings()
        approvals = TimelineEntry.objects.filter(action="approve_extension").select_related(
            "incident__category"
        )
        assert approvals.exists()
        assert TimelineEntry.objects.filter(action="request_extension").count() > approvals.count()
        extended = {a.incident_id for a in approvals}
        for approval in approvals:
            incident = approval.incident
            assert set(approval.data) == {"amount", "unit", "old_deadline", "new_deadline"}
            first = deadline_for(incident.category, incident.reported_at, incident.urgent, calendar)
            assert parse_datetime(approval.data["old_deadline"]) == first.due
            assert parse_datetime(approval.data["new_deadline"]) == incident.deadline > first.due
        for incident in Incident.objects.exclude(pk__in=extended).select_related("category")[:200]:
            deadline = deadline_for(
                incident.category, incident.reported_at, incident.urgent, calendar
            )
            fields = deadline_fields(deadline, incident.reported_at, calendar)
            assert (incident.deadline, incident.overdue_3x_at) == (
                fields["deadline"],
                fields["overdue_3x_at"],
            )

    def test_duplicates_are_linked_both_ways(self, loaded):
        duplicates = Incident.objects.filter(state="duplicate").select_related("duplicate_of")
        assert duplicates.exists()
        for duplicate in duplicates:
            original = duplicate.duplicate_of
            assert original is not None and original.duplicate_of_id is None
            assert original.category_id == duplicate.category_id
            marked = duplicate.timeline.get(action="mark_duplicate")
            assert marked.data == {"duplicate_of": original.pk}
            linked = original.timeline.get(action="duplicate_linked", data__duplicate=duplicate.pk)
            assert linked.at == marked.at
            assert linked.to_state in OPEN_STATES  # the original was open when it was linked
        assert Incident.objects.filter(duplicate_of__isnull=False).count() == duplicates.count()

    def test_geotags_are_what_intake_gives_with_some_unassigned_and_near_boundary(self, loaded):
        incidents = Incident.objects.all()
        unassigned = incidents.filter(unassigned=True)
        near = incidents.filter(near_boundary=True)
        assert unassigned.exists() and near.exists()
        assert near.count() < COUNT / 5
        assert unassigned.filter(unit__isnull=True).count() == unassigned.count()
        sample = list(unassigned) + list(near) + list(incidents.filter(unassigned=False)[:60])
        for incident in sample:
            day = timezone.localtime(incident.reported_at).date()
            tag = geotag_point(incident.location.x, incident.location.y, day)
            fields = {
                name: getattr(incident, name)
                for name in tag.incident_fields()
                if name != "boundary_candidates"
            }
            expected = tag.incident_fields()
            assert fields == {k: v for k, v in expected.items() if k != "boundary_candidates"}
            codes = sorted(c["code"] for c in incident.boundary_candidates)
            assert codes == sorted(c["code"] for c in expected["boundary_candidates"])

    def test_dispatch_rules_are_seeded_and_recorded(self, loaded):
        rules = {r.name: r for r in DispatchRule.objects.all()}
        assert len(rules) == len(demo_incidents.DISPATCH_RULES)
        police = DispatchRule.objects.filter(target="community_police")
        assert set(police.exclude(major="").values_list("major", flat=True)) == {"08", "09"}
        assert DispatchRule.objects.filter(target="department", department="区园林局").exists()
        dispatches = TimelineEntry.objects.filter(action="dispatch").select_related(
            "incident__category"
        )
        assert dispatches.exists()
        for entry in dispatches:
            rule = rules[entry.data["rule_name"]]
            assert entry.data["rule"] == rule.pk and entry.data["target"] == rule.target
            if entry.incident.category.major in ("08", "09"):
                assert rule.target == "community_police"
                assert entry.actor.username == "chief"
        handled_by_police = TimelineEntry.objects.filter(action="handle", actor__username="police")
        assert handled_by_police.exists()

    def test_loading_again_adds_nothing(self, loaded):
        before = (Incident.objects.count(), TimelineEntry.objects.count())
        out = io.StringIO()
        call_command("load_demo", stdout=out)
        assert (Incident.objects.count(), TimelineEntry.objects.count()) == before
        assert f"demo incidents: {COUNT:,} already loaded" in out.getvalue()


@pytest.mark.django_db
def test_an_existing_demo_gets_its_incidents_once():
    """A database loaded before the demo had incidents gets them on the next run (and
    --incidents 0 adds none)."""
    call_command("load_demo", "--incidents", "0", stdout=io.StringIO())
    assert Incident.objects.count() == 0
    assert DispatchRule.objects.exists()
    out = io.StringIO()
    call_command("load_demo", "--incidents", "40", stdout=out)
    assert "already loaded; nothing changed" in out.getvalue()
    assert Incident.objects.count() == 40
    call_command("load_demo", "--incidents", "40", stdout=io.StringIO())
    assert Incident.objects.count() == 40
