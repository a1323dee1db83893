from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps: Any, schema_editor: Any) -> None:
    # Issue 11: a deploy that runs only `migrate` must work. The embedded default
    # cache (settings.CACHES, DatabaseCache "hub_cache") holds LTI state and nonces;
    # without its table every LTI login answered 500. Django's own command builds
    # the table from the cache's settings and skips a table that already exists, so
    # this is safe on databases where someone ran `createcachetable` by hand. With
    # Redis configured there is no database cache and nothing is created.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_auditlog_append_only")]

    operations = [
        # Reversing leaves the table: it holds only cache entries, and a later
        # migrate forward finds it in place.
        migrations.RunPython(create_cache_tables, migrations.RunPython.noop, elidable=False),
    ]
