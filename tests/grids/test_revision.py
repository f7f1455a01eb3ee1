"""grids.models.DataRevision: the database replaces the "staffing" token on every write to
units and staff assignments, however the write is made."""

import datetime

import pytest
from django.db import connection, transaction

from grids.models import StaffAssignment, StaffMember, Unit, revision
from tests.conftest import D2024

pytestmark = pytest.mark.django_db(transaction=True)


def changes(write) -> bool:
    before = revision()
    write()
    return revision() != before


def test_every_kind_of_write_to_units_and_assignments_replaces_the_token(small_territory):
    grid = small_territory["grid1"]
    assert revision() is not None  # the territory's units were written
    member = StaffMember.objects.create(name="李网格长")
    tokens = {revision()}

    def seen(write) -> bool:
        changed = changes(write)
        tokens.add(revision())
        return changed

    assert not seen(lambda: StaffMember.objects.filter(pk=member.pk).update(name="李四"))
    assert seen(
        lambda: StaffAssignment.objects.create(
            member=member, unit=grid, role="grid_chief", start=D2024
        )
    )
    assert seen(lambda: StaffAssignment.objects.update(end=datetime.date(2030, 1, 1)))
    assert seen(lambda: Unit.objects.filter(pk=grid.pk).update(households=301))
    with connection.cursor() as cursor:  # plain SQL too
        assert seen(
            lambda: cursor.execute(
                f"UPDATE {Unit._meta.db_table} SET name = %s WHERE id = %s", ["一网格", grid.pk]
            )
        )
    assert seen(lambda: StaffAssignment.objects.all().delete())
    assert len(tokens) == 6  # the first and each of the five writes: a new token each


def test_reading_and_writing_other_tables_keeps_the_token(small_territory):
    assert not changes(lambda: list(Unit.objects.all()))
    assert not changes(lambda: StaffMember.objects.create(name="王五"))


def test_a_failed_write_keeps_the_token(small_territory):
    grid = small_territory["grid1"]
    before = revision()
    with pytest.raises(RuntimeError, match="rolled back"), transaction.atomic():
        Unit.objects.filter(pk=grid.pk).update(households=7)
        raise RuntimeError("rolled back")
    assert revision() == before


def test_each_write_within_one_transaction_replaces_the_token(small_territory):
    grid = small_territory["grid1"]
    with transaction.atomic():
        first = revision()
        Unit.objects.filter(pk=grid.pk).update(households=1)
        second = revision()
        Unit.objects.filter(pk=grid.pk).update(households=2)
        assert len({first, second, revision()}) == 3
