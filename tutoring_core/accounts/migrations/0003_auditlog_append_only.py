from __future__ import annotations

from django.db import migrations

# On PostgreSQL the database itself refuses UPDATE and DELETE on the audit log, so
# not even a raw query or a bug elsewhere can rewrite history. TRUNCATE (used by
# test tooling between tests) stays possible for the table owner.
CREATE = """
CREATE OR REPLACE FUNCTION accounts_auditlog_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'accounts_auditlog is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER accounts_auditlog_no_update_delete
  BEFORE UPDATE OR DELETE ON accounts_auditlog
  FOR EACH ROW EXECUTE FUNCTION accounts_auditlog_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS accounts_auditlog_no_update_delete ON accounts_auditlog;
DROP FUNCTION IF EXISTS accounts_auditlog_append_only();
"""


# SQLite (dev, tests) refuses UPDATE only: Django's test flush empties tables with
# DELETE there, where PostgreSQL uses TRUNCATE, which row triggers do not see.
SQLITE_CREATE = """
CREATE TRIGGER accounts_auditlog_no_update BEFORE UPDATE ON accounts_auditlog
BEGIN SELECT RAISE(ABORT, 'accounts_auditlog is append-only'); END;
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS accounts_auditlog_no_update;"


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(CREATE)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_CREATE)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(DROP)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
