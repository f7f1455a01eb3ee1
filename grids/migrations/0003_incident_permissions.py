from django.db import migrations


def sync(apps, schema_editor):
    from grids.roles import sync_groups

    sync_groups(apps)


class Migration(migrations.Migration):
    """Give the groups the permissions of models that came after 0002 (incident categories)."""

    dependencies = [
        ("grids", "0002_groups"),
        ("incidents", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
