from django.db import migrations, models

# The tables whose writes replace the "staffing" token (grids.models.DataRevision).
WATCHED = ("grids_unit", "grids_staffassignment")
EVENTS = ("INSERT", "UPDATE", "DELETE")

# A sequence gives every writing statement a value never given before, also within one
# transaction and after a rollback.
POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION grids_touch_staffing() RETURNS trigger AS $$
BEGIN
    INSERT INTO grids_datarevision (name, token)
    VALUES ('staffing', nextval('grids_datarevision_token'))
    ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def create_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        run("CREATE SEQUENCE IF NOT EXISTS grids_datarevision_token")
        run(POSTGRES_FUNCTION)
        for table in WATCHED:
            # once per statement: a bulk write costs one token, not one per row
            run(
                f"CREATE TRIGGER {table}_touch_staffing AFTER INSERT OR UPDATE OR DELETE "
                f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                "EXECUTE FUNCTION grids_touch_staffing()"
            )
    else:  # SQLite (SpatiaLite): row triggers only
        for table in WATCHED:
            for event in EVENTS:
                run(
                    f"CREATE TRIGGER {table}_touch_staffing_{event.lower()} AFTER {event} "
                    f"ON {table} BEGIN INSERT OR REPLACE INTO grids_datarevision (name, token) "
                    "VALUES ('staffing', random()); END"
                )


def drop_triggers(apps, schema_editor):
    run = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        for table in WATCHED:
            run(f"DROP TRIGGER IF EXISTS {table}_touch_staffing ON {table}")
        run("DROP FUNCTION IF EXISTS grids_touch_staffing()")
        run("DROP SEQUENCE IF EXISTS grids_datarevision_token")
    else:
        for table in WATCHED:
            for event in EVENTS:
                run(f"DROP TRIGGER IF EXISTS {table}_touch_staffing_{event.lower()}")


class Migration(migrations.Migration):
    dependencies = [("grids", "0003_incident_permissions")]

    operations = [
        migrations.CreateModel(
            name="DataRevision",
            fields=[
                (
                    "name",
                    models.CharField(
                        max_length=40, primary_key=True, serialize=False, verbose_name="name"
                    ),
                ),
                ("token", models.BigIntegerField(verbose_name="token")),
            ],
            options={
                "verbose_name": "data revision",
                "verbose_name_plural": "data revisions",
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
