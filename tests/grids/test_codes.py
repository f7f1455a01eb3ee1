import re

import pytest

from grids.codes import CodeError, child_code, validate_code

pytestmark = pytest.mark.django_db(databases=[])


@pytest.mark.parametrize(
    ("kind", "code", "parent"),
    [
        ("district", "510199000000", None),
        ("street", "510199001000", "510199000000"),
        ("street", "510199101000", "510199000000"),
        ("community", "510199001044", "510199001000"),
        ("village", "510199101201", "510199101000"),
        ("grid", "510199001044003", "510199001044"),
        ("microgrid", "51019900104400312", "510199001044003"),
        ("courtyard", "510199001044Y001", "510199001044"),
    ],
)
def test_well_formed_codes_pass(kind, code, parent):
    validate_code(kind, code, parent)


@pytest.mark.parametrize(
    ("kind", "code", "parent", "message"),
    [
        ("district", "51019900000", None, "must be 12 digits"),
        ("district", "510199001000", None, "followed by 000000"),
        ("street", "510199000000", "510199000000", "non-zero street part"),
        ("street", "510198001000", "510199000000", "does not start with its parent"),
        ("community", "510199001200", "510199001000", "001–199"),
        ("village", "510199001044", "510199001000", "200–399"),
        ("grid", "51019900104403", "510199001044", "must be 15 digits"),
        ("grid", "510199001044000", "510199001044", "must not be zero"),
        ("grid", "510199001045003", "510199001044", "does not start with its parent"),
        ("microgrid", "5101990010440031x", "510199001044003", "must be 17 digits"),
        ("courtyard", "510199001044-001", "510199001044", "'Y' + 3 digits"),
        ("community", "51019900104A", "510199001000", "must be 12 digits"),
    ],
)
def test_malformed_codes_are_refused_with_reason(kind, code, parent, message):
    with pytest.raises(CodeError, match=re.escape(message)):
        validate_code(kind, code, parent)


def test_sequence_width_is_a_setting(settings):
    settings.WEIGE_GRID_SEQUENCE_WIDTH = 2
    validate_code("grid", "51019900104403", "510199001044")
    with pytest.raises(CodeError, match="must be 14 digits"):
        validate_code("grid", "510199001044003", "510199001044")
    assert child_code("grid", "510199001044", 7) == "51019900104407"
    settings.WEIGE_GRID_SEQUENCE_WIDTH = 4
    with pytest.raises(CodeError, match="must be 2 or 3"):
        validate_code("grid", "5101990010440003", "510199001044")


def test_child_codes_follow_the_parent():
    assert child_code("street", "510199000000", 3) == "510199003000"
    assert child_code("village", "510199101000", 201) == "510199101201"
    assert child_code("grid", "510199001044", 12) == "510199001044012"
    assert child_code("microgrid", "510199001044012", 5) == "51019900104401205"
    assert child_code("courtyard", "510199001044", 8) == "510199001044Y008"
    with pytest.raises(CodeError, match="does not fit"):
        child_code("microgrid", "510199001044012", 100)
