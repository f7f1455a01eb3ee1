"""Unit codes (DOMAIN.md §2).

- district, street, community, village: the 12-digit statistical division code: 6 county
  digits (GB/T 2260) + 3 street/town digits (GB/T 10114) + 3 community/village digits.
  A district ends in 000000, a street in 000; communities are numbered 001–199 and villages
  200–399 by common practice.
- grid: the community/village code + a sequence of WEIGE_GRID_SEQUENCE_WIDTH digits (2 or 3).
- micro-grid: the grid code + a sequence of WEIGE_MICROGRID_SEQUENCE_WIDTH digits.
- courtyard: the community/village code + "Y" + 3 digits.
"""

import re

from django.conf import settings
from django.utils.translation import gettext as _

from grids.kinds import UnitKind


class CodeError(ValueError):
    """A malformed unit code; the message says which code and why."""


_DIGITS12 = re.compile(r"^\d{12}$")
_COURTYARD = re.compile(r"^(\d{12})Y(\d{3})$")


def sequence_width(kind: str) -> int:
    width = {
        UnitKind.GRID: settings.WEIGE_GRID_SEQUENCE_WIDTH,
        UnitKind.MICROGRID: settings.WEIGE_MICROGRID_SEQUENCE_WIDTH,
    }[kind]
    if width not in (2, 3):
        raise CodeError(
            _("sequence width for %(kind)s must be 2 or 3, not %(w)s") % {"kind": kind, "w": width}
        )
    return width


def expected_length(kind: str) -> int | None:
    """Length of a well-formed code of this kind (None for courtyards)."""
    if kind in (UnitKind.DISTRICT, UnitKind.STREET, UnitKind.COMMUNITY, UnitKind.VILLAGE):
        return 12
    if kind == UnitKind.GRID:
        return 12 + sequence_width(UnitKind.GRID)
    if kind == UnitKind.MICROGRID:
        return 12 + sequence_width(UnitKind.GRID) + sequence_width(UnitKind.MICROGRID)
    return None


def validate_code(kind: str, code: str, parent_code: str | None = None) -> None:
    """Raise CodeError if `code` is not a well-formed code for `kind` under `parent_code`."""
    code = code or ""
    if kind == UnitKind.COURTYARD:
        match = _COURTYARD.match(code)
        if not match:
            raise CodeError(
                _("courtyard code %(code)r must be the community code + 'Y' + 3 digits")
                % {"code": code}
            )
        if parent_code and match.group(1) != parent_code:
            raise CodeError(
                _("courtyard code %(code)r does not start with its parent's code %(parent)s")
                % {"code": code, "parent": parent_code}
            )
        return
    length = expected_length(kind)
    if not code.isdigit() or len(code) != length:
        raise CodeError(
            _("%(kind)s code %(code)r must be %(n)d digits")
            % {"kind": kind, "code": code, "n": length}
        )
    if kind == UnitKind.DISTRICT:
        if code[6:] != "000000" or code[:6].endswith("00"):
            raise CodeError(
                _("district code %(code)s must be 6 county digits followed by 000000")
                % {"code": code}
            )
        return
    if kind == UnitKind.STREET:
        if code[6:9] == "000" or code[9:] != "000":
            raise CodeError(
                _(
                    "street code %(code)s must have a non-zero street part (digits 7–9) "
                    "and end in 000"
                )
                % {"code": code}
            )
        _check_prefix(kind, code, parent_code, 6)
        return
    if kind in (UnitKind.COMMUNITY, UnitKind.VILLAGE):
        number = int(code[9:])
        low, high = (1, 199) if kind == UnitKind.COMMUNITY else (200, 399)
        if not low <= number <= high:
            raise CodeError(
                _("%(kind)s code %(code)s: the last 3 digits must be %(low)03d–%(high)03d")
                % {"kind": kind, "code": code, "low": low, "high": high}
            )
        _check_prefix(kind, code, parent_code, 9)
        return
    # grid / micro-grid: parent code + non-zero sequence
    width = sequence_width(kind)
    if int(code[-width:]) == 0:
        raise CodeError(
            _("%(kind)s code %(code)s: the sequence (last %(w)d digits) must not be zero")
            % {"kind": kind, "code": code, "w": width}
        )
    _check_prefix(kind, code, parent_code, len(code) - width)


def _check_prefix(kind: str, code: str, parent_code: str | None, digits: int) -> None:
    if parent_code is None:
        return
    if kind in (UnitKind.STREET, UnitKind.COMMUNITY, UnitKind.VILLAGE):
        expected = parent_code[:digits]
    else:
        expected = parent_code
    if code[:digits] != expected:
        raise CodeError(
            _("%(kind)s code %(code)s does not start with its parent's code %(parent)s")
            % {"kind": kind, "code": code, "parent": parent_code}
        )


def child_code(kind: str, parent_code: str, sequence: int) -> str:
    """The code of the `sequence`-th child of `kind` under `parent_code`."""
    if kind == UnitKind.COURTYARD:
        return f"{parent_code}Y{sequence:03d}"
    if kind == UnitKind.STREET:
        return f"{parent_code[:6]}{sequence:03d}000"
    if kind in (UnitKind.COMMUNITY, UnitKind.VILLAGE):
        return f"{parent_code[:9]}{sequence:03d}"
    width = sequence_width(kind)
    if sequence >= 10**width:
        raise CodeError(
            _("%(kind)s sequence %(n)d does not fit in %(w)d digits")
            % {"kind": kind, "n": sequence, "w": width}
        )
    return f"{parent_code}{sequence:0{width}d}"
