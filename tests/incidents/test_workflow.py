import pytest

from grids.roles import DISTRICT_ADMIN, GRID_CHIEF, GRID_MEMBER, PLANNER, POLICE_LIAISON
from incidents.workflow import (
    DEPARTMENT,
    FINAL_STATES,
    TRANSITIONS,
    State,
    TransitionRefused,
    check,
    transitions_from,
)

MAIN_LINE = [
    ("verify", GRID_MEMBER, State.VERIFIED),
    ("accept", GRID_CHIEF, State.ACCEPTED),
    ("dispatch", GRID_CHIEF, State.DISPATCHED),
    ("start", DEPARTMENT, State.IN_PROGRESS),
    ("handle", DEPARTMENT, State.HANDLED),
    ("check", GRID_MEMBER, State.CHECKED),
    ("close", GRID_CHIEF, State.CLOSED),
]


def test_the_main_line_runs_from_report_to_close():
    state = State.REPORTED
    for action, role, expected in MAIN_LINE:
        state = check(action, state, [role]).target
        assert state == expected


def test_side_branches():
    assert check("return", State.DISPATCHED, [DEPARTMENT], "不属于本部门").target == State.RETURNED
    assert check("dispatch", State.RETURNED, [GRID_CHIEF]).target == State.DISPATCHED
    assert check("rework", State.HANDLED, [GRID_MEMBER], "未修好").target == State.REWORK
    assert check("start", State.REWORK, [DEPARTMENT]).target == State.IN_PROGRESS
    assert check("request_extension", State.IN_PROGRESS, [DEPARTMENT], "缺材料").target == (
        State.EXTENSION_REQUESTED
    )
    assert check("approve_extension", State.EXTENSION_REQUESTED, [DISTRICT_ADMIN]).target == (
        State.IN_PROGRESS
    )
    assert check("park", State.IN_PROGRESS, [DISTRICT_ADMIN], "历史遗留").target == State.PARKED
    assert check("resume", State.PARKED, [DISTRICT_ADMIN]).target == State.DISPATCHED
    assert check("self_resolve", State.REPORTED, [GRID_MEMBER]).target == State.SELF_RESOLVED
    assert check("close", State.SELF_RESOLVED, [GRID_CHIEF]).target == State.CLOSED
    assert check("void", State.REPORTED, [GRID_CHIEF], "无效上报").target == State.VOID


def test_a_transition_from_the_wrong_state_is_refused_with_the_allowed_states():
    with pytest.raises(TransitionRefused, match="cannot close .* that is reported"):
        check("close", State.REPORTED, [GRID_CHIEF])


def test_a_transition_by_the_wrong_role_is_refused_naming_the_roles():
    with pytest.raises(TransitionRefused, match="needs one of these roles: district administrator"):
        check("park", State.IN_PROGRESS, [GRID_MEMBER], "x")
    with pytest.raises(TransitionRefused, match="roles"):
        check("accept", State.REPORTED, [PLANNER])


def test_reasons_are_required_where_the_table_says_so():
    with pytest.raises(TransitionRefused, match="needs a reason"):
        check("return", State.DISPATCHED, [DEPARTMENT], "  ")


def test_unknown_actions_are_refused():
    with pytest.raises(TransitionRefused, match="unknown action 'explode'"):
        check("explode", State.REPORTED, [GRID_CHIEF])


def test_nothing_leaves_a_final_state():
    for state in FINAL_STATES:
        roles = [GRID_CHIEF, GRID_MEMBER, POLICE_LIAISON, DISTRICT_ADMIN, DEPARTMENT]
        assert transitions_from(state, roles) == []


def test_every_state_is_reachable_from_reported():
    reachable = {State.REPORTED}
    frontier = [State.REPORTED]
    while frontier:
        state = frontier.pop()
        for transition in TRANSITIONS.values():
            if state in transition.sources and transition.target not in reachable:
                reachable.add(transition.target)
                frontier.append(transition.target)
    assert reachable == set(State)


def test_actions_offered_depend_on_role_and_state():
    member = {t.name for t in transitions_from(State.REPORTED, [GRID_MEMBER])}
    assert member == {"verify", "self_resolve", "mark_duplicate"}
    police = {t.name for t in transitions_from(State.DISPATCHED, [POLICE_LIAISON])}
    assert police == {"start", "return"}
