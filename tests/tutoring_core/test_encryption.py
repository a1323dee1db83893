from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from tests.testapp.models import SecretThing
from tutoring_core.accounts import crypto

pytestmark = pytest.mark.django_db


def _raw(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM testapp_secretthing WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def test_secret_is_encrypted_at_rest_and_plain_in_python() -> None:
    thing = SecretThing.objects.create(name="lms", secret="-----BEGIN PRIVATE KEY-----abc")
    raw = _raw(thing.pk)
    assert "BEGIN PRIVATE KEY" not in raw
    assert raw.startswith("gAAAA")  # a Fernet token
    assert SecretThing.objects.get(pk=thing.pk).secret == "-----BEGIN PRIVATE KEY-----abc"


def test_empty_secret_stays_empty() -> None:
    thing = SecretThing.objects.create(name="none", secret="")
    assert _raw(thing.pk) == ""


def test_rotation_reencrypts_under_the_new_key(settings: Any) -> None:
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    thing = SecretThing.objects.create(name="lms", secret="s3cret")
    before = _raw(thing.pk)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_key", stdout=open("/dev/null", "w"))
    after = _raw(thing.pk)
    assert after != before
    # Only the new key is needed from now on: the old one can be removed.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert SecretThing.objects.get(pk=thing.pk).secret == "s3cret"
    assert Fernet(new_key.encode()).decrypt(after.encode()) == b"s3cret"


def test_removed_key_gives_a_clear_error(settings: Any) -> None:
    thing = SecretThing.objects.create(name="lms", secret="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError, match="rotate_encryption_key"):
        SecretThing.objects.get(pk=thing.pk)


def test_malformed_key_names_the_variable(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS entry 1"):
        crypto.encrypt("x")
