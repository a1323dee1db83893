"""Staging rows are disposable (a run that loses them starts again from the fetch),
so on PostgreSQL the table skips the write-ahead log: COPY into it, marking rejects
and clearing it after a run all get cheaper. Other databases are left as they are."""

from django.db import migrations


def set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE oneroster_stagedrecord SET UNLOGGED")


def set_logged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE oneroster_stagedrecord SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("oneroster", "0003_staged_keyset_index")]
    operations = [migrations.RunPython(set_unlogged, set_logged)]
