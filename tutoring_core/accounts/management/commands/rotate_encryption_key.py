from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from tqdm import tqdm

from tutoring_core.accounts import crypto
from tutoring_core.accounts.fields import encrypted_fields


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest under the first key of FIELD_ENCRYPTION_KEYS. "
        "Put the new key first, run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model, attname in encrypted_fields():
            table = model._meta.db_table
            column = str(model._meta.get_field(attname).column)  # type: ignore[union-attr]
            pk_column = str(model._meta.pk.column)  # type: ignore[union-attr]
            qn = connection.ops.quote_name
            # Identifiers come from model metadata and are quoted; values are parameters.
            # Raw SQL on purpose: the field would decrypt on read and encrypt on
            # write anyway, but here we rotate tokens without handling plaintext.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {qn(pk_column)} FROM {qn(table)} WHERE {qn(column)} IS NOT NULL AND {qn(column)} <> ''"  # noqa: S608
                )
                ids = [row[0] for row in cursor.fetchall()]
            lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
            select_one = f"SELECT {qn(column)} FROM {qn(table)} WHERE {qn(pk_column)} = %s{lock}"  # noqa: S608
            update_one = f"UPDATE {qn(table)} SET {qn(column)} = %s WHERE {qn(pk_column)} = %s"  # noqa: S608
            for pk in tqdm(ids, desc=f"{model._meta.label}.{attname}", disable=not ids, file=self.stderr):
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(select_one, [pk])
                    (token,) = cursor.fetchone()
                    cursor.execute(update_one, [crypto.rotate(token), pk])
                total += 1
        self.stdout.write(f"Re-encrypted {total} secret(s) under the newest key.")
