"""Sign-ins per second through the SAML ACS and the OIDC callback.

Runs in-process with Django's test client on a throwaway SQLite database (or
DATABASE_URL if set), so the figures are the application's own cost: XML
signature checks, replay cache, provisioning lookups, session and audit writes.
Baselines measured in the same run:

- ``page``: a plain tenant page (the sign-in page): the floor for any request;
- ``saml_verify_only``: python3-saml validating the same responses with no
  Django view, database or session: the cost of the cryptography alone.

SAML responses are signed in the bench with a key made here (the IdP's cost is
not timed). OIDC goes over real HTTP to a loopback provider for the token
exchange, with a signed ID token per sign-in. Users are returning users (linked
on a warm-up pass), which is the steady state of a school morning.

    .venv/bin/python bench/sso.py [--quick]

The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(tmp: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    os.environ["VAR_DIR"] = str(tmp)
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # keep the JSON the last line
    import django

    django.setup()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the loopback provider's access log
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer sign-ins (finishes in well under a minute)"
    )
    args = parser.parse_args()
    n = 40 if args.quick else 300

    with tempfile.TemporaryDirectory(prefix="bench-sso-") as tmpdir:
        _setup(Path(tmpdir))
        from django.test import Client

        from sso import saml, services
        from sso.models import IdentityProvider, SamlRequest
        from tests.peers.oidc_provider import forge_provider
        from tests.peers.simplesamlphp import make_key_pair
        from tests.sso import saml_forge as forge
        from tutoring_core.accounts.models import Tenant

        tenant = Tenant.objects.create(slug="bench", name="Bench District")
        key_pem, cert_pem = make_key_pair("bench-idp")
        entity = "https://idp.bench.example/saml"
        acs = "http://localhost:8000/sso/bench/saml/acs/"
        sp_entity = "http://localhost:8000/sso/bench/saml/metadata/"
        saml_idp = IdentityProvider.objects.create(
            tenant=tenant,
            name="Bench SAML",
            protocol="saml",
            entity_id=entity,
            sso_url="https://idp.bench.example/sso",
            signing_certificates=[cert_pem],
            allow_jit=True,
            email_attribute="mail",
            emails_verified=True,
            allowed_email_domains="bench.example",
        )

        def saml_round(count: int, label: str) -> tuple[float, float, list[str]]:
            clients, encoded = [], []
            for i in range(count):
                client = Client()
                client.get(f"/sso/bench/saml/{saml_idp.pk}/login/")
                request_id = SamlRequest.objects.latest("id").request_id
                spec = forge.ResponseSpec(
                    issuer=entity,
                    destination=acs,
                    audience=sp_entity,
                    recipient=acs,
                    in_response_to=request_id,
                    name_id=f"{label}-user-{i % max(1, count)}",
                    attributes={"mail": [f"user{i}@bench.example"]},
                )
                response = forge.build_response(spec)
                forge.sign(forge.assertion_of(response), key_pem, cert_pem)
                clients.append(client)
                encoded.append(forge.encode(response))
            started = time.perf_counter()
            for client, body in zip(clients, encoded, strict=True):
                answer = client.post("/sso/bench/saml/acs/", {"SAMLResponse": body})
                assert answer.status_code == 303, answer.content[:400]
                assert client.get(answer["Location"]).status_code == 302
            return time.perf_counter() - started, 0.0, encoded

        saml_round(n, "u")  # warm-up: links (JIT) every user
        saml_seconds, _, encoded = saml_round(n, "u")

        # Baseline: the same validation without Django, DB or session.
        sp_key = services.sp_key_get_or_create(tenant=tenant)
        from django.test import RequestFactory

        fake = RequestFactory().post("/sso/bench/saml/acs/")
        data = saml.request_data(fake)
        request_ids = [saml.read_envelope(body).in_response_to for body in encoded]
        started = time.perf_counter()
        for body, request_id in zip(encoded, request_ids, strict=True):
            saml.validate_response(
                tenant=tenant,
                sp_key=sp_key,
                idp=saml_idp,
                saml_response_b64=body,
                data=data,
                request_id=request_id,
            )
        verify_seconds = time.perf_counter() - started

        # Baseline: a plain tenant page.
        client = Client()
        started = time.perf_counter()
        for _ in range(n):
            assert client.get("/sso/bench/").status_code == 200
        page_seconds = time.perf_counter() - started

        with forge_provider() as op:
            from joserfc import jwt

            oidc_idp = IdentityProvider.objects.create(
                tenant=tenant,
                name="Bench OIDC",
                protocol="oidc",
                issuer=op.issuer,
                client_id="bench",
                client_secret="bench-secret",
                allow_jit=True,
                email_attribute="email",
                allowed_email_domains="bench.example",
            )

            def oidc_round(count: int) -> float:
                total = 0.0
                for i in range(count):
                    client = Client()
                    start = client.get(f"/sso/bench/oidc/{oidc_idp.pk}/login/")
                    from urllib.parse import parse_qs, urlsplit

                    query = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
                    now = int(time.time())
                    claims = {
                        "iss": op.issuer,
                        "sub": f"oidc-{i}",
                        "aud": "bench",
                        "iat": now,
                        "exp": now + 300,
                        "nonce": query["nonce"],
                        "email": f"o{i}@bench.example",
                        "email_verified": True,
                    }
                    token = jwt.encode({"alg": "RS256", "kid": "forge-1"}, claims, op.key)
                    op.next_token = lambda form, token=token: {
                        "access_token": "at",
                        "token_type": "Bearer",
                        "id_token": token,
                    }
                    began = time.perf_counter()
                    answer = client.get(f"/sso/bench/oidc/callback/?code=c{i}&state={query['state']}")
                    total += time.perf_counter() - began
                    assert answer.status_code == 302, answer.content[:400]
                return total

            oidc_round(n)  # warm-up: discovery, JWKS, JIT
            oidc_seconds = oidc_round(n)

    figures: dict[str, Any] = {
        "sign_ins": n,
        "saml_acs_sign_ins_per_s": round(_rate(n, saml_seconds), 1),
        "oidc_callback_sign_ins_per_s": round(_rate(n, oidc_seconds), 1),
        "baseline_page_per_s": round(_rate(n, page_seconds), 1),
        "baseline_saml_verify_only_per_s": round(_rate(n, verify_seconds), 1),
        "saml_ms_per_sign_in": round(1000 * saml_seconds / n, 2),
        "oidc_ms_per_sign_in": round(1000 * oidc_seconds / n, 2),
        "database": os.environ["DATABASE_URL"].split(":", 1)[0],
    }
    rows: list[tuple[str, float, float]] = [
        ("baseline: plain tenant page", figures["baseline_page_per_s"], 1000 * page_seconds / n),
        (
            "baseline: SAML verify only (no DB)",
            figures["baseline_saml_verify_only_per_s"],
            1000 * verify_seconds / n,
        ),
        ("SAML ACS + finish (sign-in)", figures["saml_acs_sign_ins_per_s"], figures["saml_ms_per_sign_in"]),
        (
            "OIDC callback (token over HTTP)",
            figures["oidc_callback_sign_ins_per_s"],
            figures["oidc_ms_per_sign_in"],
        ),
    ]
    print(f"SSO sign-in throughput, {n} returning users, single process, {figures['database']}")
    print(f"{'path':<38}{'per second':>12}{'ms each':>10}{'vs page':>10}")
    for label, rate, ms in rows:
        print(f"{label:<38}{rate:>12.1f}{ms:>10.2f}{ms / (1000 * page_seconds / n):>9.1f}x")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
