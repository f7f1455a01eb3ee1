from django.contrib.gis.db.backends.spatialite.schema import SpatialiteSchemaEditor
from django.contrib.gis.db.models import GeometryField


class SchemaEditor(SpatialiteSchemaEditor):
    def alter_db_table(self, model, old_db_table, new_db_table):
        """Rename a table and rebuild its spatial indexes.

        Django's SpatiaLite editor recovers the geometry metadata after a rename (which
        SQLite does whenever a migration rebuilds a table) but leaves the spatial index
        disabled and its R*Tree unmaintained. Lookups rely on that index, so it is rebuilt.
        """
        super().alter_db_table(model, old_db_table, new_db_table)
        if old_db_table == new_db_table:
            return
        for field in model._meta.local_fields:
            if isinstance(field, GeometryField) and field.spatial_index:
                index = self.quote_name(f"idx_{new_db_table}_{field.column}")
                self.execute(f"DROP TABLE IF EXISTS {index}")
                self.execute(
                    self.sql_add_spatial_index
                    % {
                        "table": self.geo_quote_name(new_db_table),
                        "column": self.geo_quote_name(field.column),
                    }
                )
