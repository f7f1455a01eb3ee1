"""Load the seed categories (fixtures/categories.csv) through the same service as the
import_categories command: idempotent, rows are matched by code."""

from django.db import migrations


def load_seed_categories(apps, schema_editor):
    from incidents.categories import load_seed

    load_seed(model=apps.get_model("incidents", "Category"))


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]

    # Categories are never deleted: unapplying leaves them (0001 drops the table anyway).
    operations = [migrations.RunPython(load_seed_categories, migrations.RunPython.noop)]
