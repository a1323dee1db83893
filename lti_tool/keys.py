"""The tool's RSA key pairs: creation, the signing key, the public JWKS, rotation."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from jwcrypto.jwk import JWK

from lti_tool.models import ToolKey


def _new_key_material() -> tuple[str, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=settings.LTI_KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    jwk = JWK.from_pem(pem.encode())
    public = json.loads(jwk.export_public())
    # The RFC 7638 thumbprint is a stable, collision-free kid derived from the key itself.
    public.update({"kid": jwk.thumbprint(), "alg": "RS256", "use": "sig"})
    return pem, public


@transaction.atomic
def tool_key_rotate(*, overlap: dt.timedelta | None = None) -> ToolKey:
    """Make a new signing key; the previous one stays published for ``overlap``.

    The new key is in the JWKS from the moment it signs, and a platform that sees
    an unknown kid refetches our JWKS, so switching at once is safe; the overlap
    covers tokens the old key signed moments ago (deep-linking responses in flight).
    """
    overlap = overlap if overlap is not None else dt.timedelta(hours=settings.LTI_KEY_OVERLAP_HOURS)
    now = timezone.now()
    # Lock the active row so two rotations cannot both demote it and both insert.
    current = list(ToolKey.objects.select_for_update().filter(status=ToolKey.Status.ACTIVE))
    for key in current:
        key.status = ToolKey.Status.RETIRING
        key.retire_after = now + overlap
        key.save(update_fields=["status", "retire_after", "updated_at"])
    pem, public = _new_key_material()
    key = ToolKey.objects.create(kid=public["kid"], private_key_pem=pem, public_jwk=public)
    key_cache_clear()
    return key


def key_cache_clear() -> None:
    global _current
    _current = None
    _loaded.clear()


def tool_keys_retire_expired() -> int:
    """Drop retiring keys whose overlap window has passed from the JWKS."""
    return ToolKey.objects.filter(status=ToolKey.Status.RETIRING, retire_after__lte=timezone.now()).update(
        status=ToolKey.Status.RETIRED, updated_at=timezone.now()
    )


# Every login and launch needs the signing key; keep it in the process for a short
# while. A rotation is seen within this window, and the previous key stays in the
# JWKS for hours, so a process signing with it meanwhile is still verifiable.
_CURRENT_TTL = 30.0
_current: tuple[float, ToolKey] | None = None


def tool_key_current() -> ToolKey:
    """The signing key, created on first use (a fresh install has none)."""
    global _current
    if _current is not None and time.monotonic() - _current[0] < _CURRENT_TTL:
        return _current[1]
    key = ToolKey.objects.filter(status=ToolKey.Status.ACTIVE).first()
    if key is not None:
        _current = (time.monotonic(), key)
        return key
    try:
        return tool_key_rotate()
    except IntegrityError:
        # Another process created the first key at the same moment: use theirs.
        return ToolKey.objects.get(status=ToolKey.Status.ACTIVE)


# Loaded private keys by kid. Parsing the PEM costs ~30 ms (cryptography checks
# the RSA key's consistency on every load); per process, each key is loaded once.
_loaded: dict[str, rsa.RSAPrivateKey] = {}


def tool_private_key(key: ToolKey) -> rsa.RSAPrivateKey:
    """The key object for signing (deep-linking responses, client assertions).

    The consistency check is skipped: the key was generated here (see
    ``_new_key_material``) and comes back through authenticated encryption, so it
    is the key we made; the check guards against keys from untrusted sources.
    """
    loaded = _loaded.get(key.kid)
    if loaded is None:
        private = serialization.load_pem_private_key(
            key.private_key_pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(private, rsa.RSAPrivateKey):
            raise TypeError(f"Tool key {key.kid} is not an RSA key.")
        loaded = _loaded[key.kid] = private
    return loaded


def tool_jwks() -> dict[str, list[dict[str, Any]]]:
    """Every published public key (the active one and those still in overlap)."""
    keys = list(ToolKey.objects.published().order_by("-created_at").values_list("public_jwk", flat=True))
    if not keys:
        keys = [tool_key_current().public_jwk]
    return {"keys": keys}
