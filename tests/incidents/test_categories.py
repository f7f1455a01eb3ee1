"""Problem categories: the seed, CSV import/export, the commands, the admin, the model rules."""

import csv
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from incidents.categories import (
    COLUMNS,
    SEED_PATH,
    CategoryFileError,
    export_categories,
    import_categories,
    load_seed,
)
from incidents.models import Category, CategoryDeletionRefused

pytestmark = pytest.mark.django_db

NEW = {
    "code": "E0199",
    "family": "event",
    "major": "01",
    "major_name": "市容环境",
    "minor": "99",
    "name": "测试类别",
    "responsible_unit_type": "城管",
    "deadline_unit": "hours",
    "deadline_normal": "5",
    "deadline_urgent": "2",
    "staged_deadlines": "",
    "police_relevant": "false",
    "duplicate_radius_m": "50",
    "active": "true",
}


def write_csv(path, rows, *, encoding="utf-8", columns=COLUMNS):
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(**changes):
    return {**NEW, **changes}


# --- the seed -------------------------------------------------------------------------------


def seed_rows() -> int:
    with open(SEED_PATH, encoding="utf-8") as seed:
        return sum(1 for _ in csv.DictReader(seed))


def test_the_seed_is_loaded_by_migrate():
    assert Category.objects.count() == seed_rows() == 123
    assert Category.objects.filter(family="component").count() == 40
    assert Category.objects.filter(family="event").count() == 83
    majors = dict(
        Category.objects.filter(family="event").values_list("major", "major_name").distinct()
    )
    assert majors == {
        "01": "市容环境",
        "02": "宣传广告",
        "03": "施工管理",
        "04": "突发事件",
        "05": "街面秩序",
        "06": "扩展事件",
        "07": "矛盾纠纷",
        "08": "治安隐患",
        "09": "安全隐患",
        "10": "特殊人群服务",
        "11": "民生服务",
    }
    assert set(Category.objects.filter(family="component").values_list("major", flat=True)) == {
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
    }
    assert not Category.objects.filter(active=False).exists()


def test_seed_rows_carry_the_documented_deadlines():
    cover = Category.objects.get(code="C0101")
    assert (cover.family, cover.major, cover.major_name, cover.minor, cover.name) == (
        "component",
        "01",
        "公用设施",
        "01",
        "井盖",
    )
    assert cover.deadline(urgent=True) == (Decimal("2"), "hours")
    assert cover.responsible_unit_type == "市政"

    construction = Category.objects.get(code="E0101")
    assert construction.name == "违法建设"
    assert construction.deadline() == (Decimal("15"), "days")
    assert construction.staged_deadlines == [
        {"stage": "停工", "amount": 4, "unit": "hours"},
        {"stage": "处罚", "amount": 7, "unit": "days"},
        {"stage": "拆除", "amount": 20, "unit": "days"},
    ]
    rubbish = Category.objects.get(name="暴露垃圾")
    assert rubbish.deadline() == (Decimal("1"), "days")
    dirty = Category.objects.get(name="道路不洁")
    assert dirty.deadline() == (Decimal("5"), "hours")


def test_seed_police_relevant_flags():
    hazards = {c.name: c.police_relevant for c in Category.objects.filter(code__startswith="E09")}
    assert hazards["高空抛物"] and hazards["易燃易爆危险品违规存放"]
    assert not hazards["电动自行车飞线充电"] and not hazards["燃气安全隐患"]
    assert all(
        Category.objects.filter(code__startswith="E08").values_list("police_relevant", flat=True)
    )
    assert Category.objects.get(name="火灾").police_relevant
    assert Category.objects.get(name="火灾").deadline(urgent=True) == (Decimal("0.5"), "hours")
    assert not Category.objects.get(name="邻里纠纷").police_relevant


def test_every_seed_row_passes_the_model_rules():
    for category in Category.objects.all():
        category.full_clean()


def test_the_seed_file_is_exactly_what_export_writes(tmp_path):
    export_categories(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == b"\xef\xbb\xbf" + SEED_PATH.read_bytes()


def test_the_seed_migration_is_idempotent_with_the_historical_model():
    state = MigrationExecutor(connection).loader.project_state(
        ("incidents", "0002_seed_categories")
    )
    summary = load_seed(model=state.apps.get_model("incidents", "Category"))
    assert summary.counts() == {"created": 0, "updated": 0, "unchanged": 123, "errors": 0}


# --- import and export ----------------------------------------------------------------------


def test_round_trip_changes_nothing(tmp_path):
    first = tmp_path / "first.csv"
    export_categories(first)
    summary = import_categories(first)
    assert summary.written
    assert summary.counts() == {"created": 0, "updated": 0, "unchanged": 123, "errors": 0}
    second = tmp_path / "second.csv"
    export_categories(second)
    assert second.read_bytes() == first.read_bytes()


def test_import_updates_a_changed_deadline(tmp_path):
    path = tmp_path / "all.csv"
    export_categories(path)
    text = path.read_text(encoding="utf-8-sig")
    line = next(x for x in text.splitlines() if x.startswith("C0101,"))
    assert ",hours,8,2," in line
    path.write_text(text.replace(line, line.replace(",hours,8,2,", ",hours,6,1.5,")), "utf-8")
    summary = import_categories(path)
    assert summary.updated == ["C0101"]
    assert summary.changes == {"C0101": ["deadline_normal", "deadline_urgent"]}
    assert len(summary.unchanged) == 122
    cover = Category.objects.get(code="C0101")
    assert (cover.deadline_normal, cover.deadline_urgent) == (Decimal("6"), Decimal("1.5"))
    assert import_categories(path).counts()["unchanged"] == 123  # idempotent


def test_import_creates_deactivates_and_leaves_the_rest(tmp_path):
    path = write_csv(
        tmp_path / "some.csv",
        [row(), _seed_row("C0101", active="false")],
    )
    summary = import_categories(path)
    assert (summary.created, summary.updated) == (["E0199"], ["C0101"])
    assert summary.changes["C0101"] == ["active"]
    assert not Category.objects.get(code="C0101").active
    assert Category.objects.count() == 124  # nothing missing from the file was touched


def test_hand_edited_files_may_use_chinese_words(tmp_path):
    path = write_csv(
        tmp_path / "zh.csv",
        [row(family="事件", deadline_unit="工作日", police_relevant="是")],
    )
    import_categories(path)
    category = Category.objects.get(code="E0199")
    assert (category.family, category.deadline_unit, category.police_relevant) == (
        "event",
        "days",
        True,
    )


def test_blank_optional_cells_take_the_defaults(tmp_path):
    path = write_csv(
        tmp_path / "blank.csv",
        [
            row(
                deadline_urgent="",
                responsible_unit_type="",
                police_relevant="",
                duplicate_radius_m="",
                active="",
            )
        ],
    )
    assert import_categories(path).created == ["E0199"]
    category = Category.objects.get(code="E0199")
    assert category.deadline_urgent == category.deadline_normal == Decimal("5")
    assert (category.police_relevant, category.duplicate_radius_m, category.active) == (
        False,
        50,
        True,
    )


BAD_ROWS = [
    ({"family": "facility"}, "family: unknown family “facility”"),
    ({"major": "1"}, "major: “1” is not two digits from 01 to 99"),
    ({"minor": "123"}, "minor: “123” is not two digits"),
    ({"deadline_urgent": "8"}, "urgent deadline (8) cannot be longer than the normal deadline (5)"),
    ({"staged_deadlines": '[{"stage": "停工", "amount": 4'}, "staged_deadlines: not valid JSON"),
    ({"deadline_normal": "五"}, "deadline_normal: “五” is not a number"),
    ({"deadline_normal": "0"}, "deadline_normal: a deadline must be positive"),
    ({"code": "E0197"}, "code E0197 does not match family event, major class 01 and minor"),
    ({"deadline_unit": "weeks"}, "deadline_unit: unknown unit “weeks”"),
    ({"police_relevant": "maybe"}, "police_relevant: “maybe” is neither true nor false"),
    ({"duplicate_radius_m": "0"}, "duplicate_radius_m: the radius must be at least 1 metre"),
    ({"name": ""}, "name is required"),
    (
        {
            "staged_deadlines": '[{"stage": "处罚", "amount": 7, "unit": "days"}, '
            '{"stage": "停工", "amount": 4, "unit": "hours"}]'
        },
        "stage 2 (停工) must come later than stage 1 (处罚)",
    ),
    (
        {"staged_deadlines": '[{"stage": "停工", "amount": 4, "unit": "weeks"}]'},
        "stage 1 (停工): unknown unit weeks",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD_ROWS)
def test_a_bad_row_is_reported_with_its_row_number_and_nothing_is_written(
    tmp_path, changes, message
):
    good = row(code="E0198", minor="98")
    path = write_csv(tmp_path / "bad.csv", [good, row(**changes)])
    before = list(Category.objects.values_list("code", "deadline_normal"))
    summary = import_categories(path)
    assert not summary.written
    assert [(e.row, e.code) for e in summary.errors] == [(3, changes.get("code", "E0199"))]
    assert message in str(summary.errors[0]), str(summary.errors[0])
    assert str(summary.errors[0]).startswith("row 3")
    assert summary.created == ["E0198"]  # what would have happened
    assert list(Category.objects.values_list("code", "deadline_normal")) == before


def test_a_duplicate_code_in_the_file_is_reported(tmp_path):
    path = write_csv(tmp_path / "dup.csv", [row(), row(name="又一个")])
    summary = import_categories(path)
    assert [str(e) for e in summary.errors] == ["row 3 (E0199): code E0199 is already on row 2"]
    assert not Category.objects.filter(code="E0199").exists()


def test_row_numbers_count_the_header_and_skip_nothing(tmp_path):
    path = write_csv(
        tmp_path / "rows.csv",
        [row(code="E0198", minor="98"), {c: "" for c in COLUMNS}, row(family="x")],
    )
    assert [e.row for e in import_categories(path).errors] == [4]


def test_skip_bad_writes_the_good_rows_only(tmp_path):
    path = write_csv(
        tmp_path / "mixed.csv",
        [row(code="E0198", minor="98"), row(deadline_urgent="9"), row(code="E0197", minor="97")],
    )
    summary = import_categories(path, skip_bad=True)
    assert summary.written
    assert summary.created == ["E0198", "E0197"]
    assert [e.row for e in summary.errors] == [3]
    assert set(
        Category.objects.filter(code__in=["E0197", "E0198", "E0199"]).values_list("code", flat=True)
    ) == {"E0197", "E0198"}


def test_dry_run_writes_nothing(tmp_path):
    path = write_csv(tmp_path / "new.csv", [row()])
    summary = import_categories(path, dry_run=True)
    assert summary.created == ["E0199"] and not summary.written
    assert not Category.objects.filter(code="E0199").exists()


def test_a_file_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("code,name\nE0199,测试\n", encoding="utf-8")
    with pytest.raises(CategoryFileError, match="lacks the columns family, major"):
        import_categories(path)


def test_unknown_columns_are_ignored_with_a_note(tmp_path):
    path = write_csv(tmp_path / "extra.csv", [{**row(), "备注": "x"}], columns=(*COLUMNS, "备注"))
    summary = import_categories(path)
    assert summary.created == ["E0199"]
    assert summary.warnings == ["ignored unknown columns: 备注"]


def test_import_and_export_work_on_file_objects():
    out = io.StringIO()
    export_categories(out, Category.objects.filter(code__startswith="C01"))
    assert out.getvalue().count("\n") == 12
    binary = io.BytesIO(out.getvalue().encode("gbk"))
    assert len(import_categories(binary, encoding="gbk").unchanged) == 11


def test_deleting_categories_is_refused():
    with pytest.raises(CategoryDeletionRefused):
        Category.objects.get(code="C0101").delete()
    with pytest.raises(CategoryDeletionRefused):
        Category.objects.filter(code__startswith="C").delete()
    assert Category.objects.count() == 123


# --- the commands ---------------------------------------------------------------------------


def test_import_command_refuses_a_file_with_errors(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", [row(code="E0198", minor="98"), row(major="1")])
    with pytest.raises(CommandError, match="nothing was imported: 1 rows have errors"):
        call_command("import_categories", str(path))
    assert "row 3 (E0199): major: “1” is not two digits" in capsys.readouterr().err
    assert not Category.objects.filter(code__in=["E0198", "E0199"]).exists()


def test_import_command_with_skip_bad(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", [row(code="E0198", minor="98"), row(major="1")])
    call_command("import_categories", str(path), "--skip-bad")
    out = capsys.readouterr()
    assert "created: 1, updated: 0, unchanged: 0, rows with errors: 1" in out.out
    assert "row 3" in out.err
    assert Category.objects.filter(code="E0198").exists()
    assert not Category.objects.filter(code="E0199").exists()


def test_import_command_dry_run(tmp_path, capsys):
    path = write_csv(tmp_path / "new.csv", [row()])
    call_command("import_categories", str(path), "--dry-run")
    assert "dry run: nothing was written" in capsys.readouterr().out
    assert not Category.objects.filter(code="E0199").exists()


def test_a_gbk_file_from_excel_imports_with_encoding_gbk(tmp_path, capsys):
    path = write_csv(
        tmp_path / "excel.csv",
        [row(), row(code="E0198", minor="98", name="占道晾晒")],
        encoding="gbk",
    )
    with pytest.raises(CommandError, match="try --encoding gbk"):
        call_command("import_categories", str(path))
    call_command("import_categories", str(path), "--encoding", "gbk")
    assert "created: 2" in capsys.readouterr().out
    assert Category.objects.get(code="E0198").name == "占道晾晒"
    assert Category.objects.get(code="E0199").major_name == "市容环境"


def test_export_command_round_trips(tmp_path, capsys):
    path = tmp_path / "out.csv"
    call_command("export_categories", str(path))
    assert "exported 123 categories" in capsys.readouterr().out
    call_command("import_categories", str(path))
    assert "created: 0, updated: 0, unchanged: 123" in capsys.readouterr().out
    gbk = tmp_path / "gbk.csv"
    call_command("export_categories", str(gbk), "--encoding", "gbk")
    assert gbk.read_text(encoding="gbk") == path.read_text(encoding="utf-8-sig")


# --- the admin ------------------------------------------------------------------------------


def test_admin_changelist_renders_without_a_delete_action(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/incidents/category/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "井盖" in html and "C0101" in html
    assert 'value="export_csv"' in html and 'value="deactivate"' in html
    assert "delete_selected" not in html
    category = Category.objects.get(code="C0101")
    assert client.get(f"/admin/incidents/category/{category.pk}/delete/").status_code == 403
    assert client.get(f"/admin/incidents/category/{category.pk}/change/").status_code == 200
    assert client.get("/admin/incidents/category/?q=违法").status_code == 200
    assert client.get("/admin/incidents/category/?family__exact=event").status_code == 200


def test_admin_exports_the_selected_categories(client, admin_user):
    client.force_login(admin_user)
    chosen = Category.objects.filter(code__in=["C0101", "E0101"])
    response = client.post(
        "/admin/incidents/category/",
        {"action": "export_csv", "_selected_action": [c.pk for c in chosen]},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="categories.csv"'
    text = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["code"] for r in rows] == ["C0101", "E0101"]
    summary = import_categories(io.StringIO(text))
    assert summary.unchanged == ["C0101", "E0101"]


def test_admin_deactivates_instead_of_deleting(client, admin_user):
    client.force_login(admin_user)
    category = Category.objects.get(code="E0506")
    client.post(
        "/admin/incidents/category/",
        {"action": "deactivate", "_selected_action": [category.pk]},
    )
    category.refresh_from_db()
    assert not category.active
    assert Category.objects.active().count() == 122


def test_admin_with_the_district_admin_permissions(client, django_user_model):
    """view/add/change (the codenames for the district administrator group): the list, the
    export and deactivate actions; deleting stays refused."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("qu", password="pw-123456", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="incidents",
            codename__in=["view_category", "add_category", "change_category"],
        )
    )
    client.force_login(user)
    html = client.get("/admin/incidents/category/").content.decode()
    assert 'value="export_csv"' in html and 'value="deactivate"' in html
    assert "delete_selected" not in html
    assert client.get("/admin/incidents/category/add/").status_code == 200
    pk = Category.objects.get(code="C0101").pk
    assert client.get(f"/admin/incidents/category/{pk}/delete/").status_code == 403


def test_admin_edit_form_reports_model_errors(client, admin_user):
    client.force_login(admin_user)
    category = Category.objects.get(code="C0101")
    data = {
        **_seed_row("C0101"),
        "deadline_urgent": "9",
        "staged_deadlines": "[]",
        "police_relevant": "",
        "active": "on",
    }
    response = client.post(f"/admin/incidents/category/{category.pk}/change/", data)
    assert response.status_code == 200
    assert "cannot be longer than the normal deadline" in response.content.decode()


# --- the model rules ------------------------------------------------------------------------


def category(**changes):
    values = {
        "code": "E0199",
        "family": "event",
        "major": "01",
        "major_name": "市容环境",
        "minor": "99",
        "name": "测试",
        "deadline_unit": "hours",
        "deadline_normal": Decimal("5"),
        "deadline_urgent": Decimal("2"),
    }
    return Category(**{**values, **changes})


def errors_of(instance) -> dict:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def test_clean_accepts_a_good_category():
    category(staged_deadlines=[{"stage": "停工", "amount": 4, "unit": "hours"}]).full_clean()


def test_clean_checks_the_code_against_family_major_and_minor():
    assert errors_of(category(family="component"))["code"] == [
        "the code E0199 does not match family component, major class 01 and minor class 99: "
        "it should be C0199"
    ]
    assert errors_of(category(code="X01"))["code"] == [
        "the code is C (component) or E (event) followed by four digits, e.g. C0101"
    ]
    assert errors_of(category(major="1", code="E0199"))["major"] == [
        "use two digits from 01 to 99 (format the column as text in Excel)"
    ]
    assert "code" in errors_of(category(code="C0101", family="component", minor="01"))  # unique


def test_clean_checks_the_deadlines():
    assert errors_of(category(deadline_urgent=Decimal("6")))["deadline_urgent"] == [
        "the urgent deadline (6) cannot be longer than the normal deadline (5)"
    ]
    assert errors_of(category(deadline_normal=Decimal("0"), deadline_urgent=Decimal("0")))[
        "deadline_normal"
    ] == ["a deadline must be positive"]
    assert errors_of(category(duplicate_radius_m=0))["duplicate_radius_m"] == [
        "the radius must be at least 1 metre"
    ]


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            {"stage": "停工"},
            'staged deadlines must be a list of {"stage", "amount", "unit"} objects',
        ),
        (["停工"], 'stage 1 must be an object {"stage", "amount", "unit"}'),
        (
            [{"stage": "停工", "amount": 4}],
            "stage 1 must have exactly the keys stage, amount and unit, not amount, stage",
        ),
        ([{"stage": "", "amount": 4, "unit": "hours"}], "stage 1 needs a name"),
        (
            [{"stage": "停工", "amount": -1, "unit": "hours"}],
            "stage 1 (停工): the amount must be a positive number",
        ),
        (
            [{"stage": "停工", "amount": "4", "unit": "hours"}],
            "stage 1 (停工): the amount must be a positive number",
        ),
        (
            [{"stage": "停工", "amount": 4, "unit": "weeks"}],
            "stage 1 (停工): unknown unit weeks, use hours, days",
        ),
        (
            [
                {"stage": "停工", "amount": 4, "unit": "hours"},
                {"stage": "停工", "amount": 7, "unit": "days"},
            ],
            "stage 2: the name 停工 is used twice",
        ),
        (
            [
                {"stage": "停工", "amount": 1, "unit": "days"},
                {"stage": "处罚", "amount": 8, "unit": "hours"},
            ],
            "stage 2 (处罚) must come later than stage 1 (停工): stages are in increasing "
            "working time",
        ),
    ],
)
def test_clean_checks_staged_deadlines(stages, message):
    assert errors_of(category(staged_deadlines=stages))["staged_deadlines"] == [message]


def _seed_row(code, **changes):
    with open(SEED_PATH, encoding="utf-8") as seed:
        found = next(r for r in csv.DictReader(seed) if r["code"] == code)
    return {**found, **changes}
