from __future__ import annotations

from typing import Any

from django.db import models

from tutoring_core.accounts import crypto


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token; Python code sees the plaintext.

    The ciphertext is never compared in SQL, so the field cannot be filtered on.
    ``manage.py rotate_encryption_key`` re-encrypts every such column.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(str(value))


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) in the project stored encrypted."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                found.append((model, field.attname))
    return found
