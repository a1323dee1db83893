"""Payments on PostgreSQL: ledger postings per second and webhook events processed per
second, each beside a bare insert of the same rows measured in the same run (issue 16).

    .venv/bin/python bench/payments.py            # 2,000 of each
    .venv/bin/python bench/payments.py --quick    # 300 of each; < 1 minute

(a) ``ledger.post``: a two-line posting (credit -> reserved) with its balance checks and
    UPDATEs, one transaction each; baseline: the same Posting and two PostingLine rows
    inserted without the reference lookup nor the balance updates.
(b) Webhook events: ``services.webhook_record`` (deduplicated under the unique event id; every
    tenth event is a replay) then ``services.webhook_process`` for an event type that needs no
    Stripe call; baseline: a bare insert of the WebhookEvent row.

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/hub_bench_payments (a test
database "test_<name>" is made and dropped). Prints a table, then one JSON line, last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 300 if args.quick else 2000
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hub_bench_payments")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        sys.exit("bench/payments.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        results = _measure(count, transaction)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    rows = [
        ("ledger postings/s (ledger.post)", results["ledger_per_s"]),
        ("  baseline: bare insert of the same rows/s", results["ledger_baseline_per_s"]),
        ("webhook events/s (record + process)", results["webhook_per_s"]),
        ("  baseline: bare insert of the event row/s", results["webhook_baseline_per_s"]),
    ]
    print(f"{'measure':<48} {'per second':>12}")
    for name, value in rows:
        print(f"{name:<48} {value:>12.0f}")
    print(json.dumps({"bench": "payments", "count": count, **{k: round(v, 1) for k, v in results.items()}}))


def _measure(count: int, transaction: Any) -> dict[str, float]:
    from tutoring_core.accounts.models import Tenant
    from tutoring_core.payments import ledger, services
    from tutoring_core.payments.models import PayerAccount, Posting, PostingLine, WebhookEvent

    tenant = Tenant.objects.create(slug="bench", name="Bench District")
    payer = PayerAccount.objects.create(tenant=tenant, name="Bench family")
    issued = ledger.account(tenant_id=tenant.pk, purpose="issued", unit="session")
    credit = ledger.account(tenant_id=tenant.pk, purpose="credit", unit="session", payer=payer)
    reserved = ledger.account(tenant_id=tenant.pk, purpose="reserved", unit="session", payer=payer)
    ledger.post(
        tenant_id=tenant.pk, reference="grant", kind="grant", lines=[(issued, -count), (credit, count)]
    )

    started = time.perf_counter()
    for number in range(count):
        with transaction.atomic():
            ledger.post(
                tenant_id=tenant.pk,
                reference=f"r:{number}",
                kind="reserve",
                lines=[(credit, -1), (reserved, 1)],
            )
    ledger_s = time.perf_counter() - started

    started = time.perf_counter()
    for number in range(count):
        with transaction.atomic():
            posting = Posting.objects.create(tenant=tenant, reference=f"b:{number}", kind="reserve")
            PostingLine.objects.bulk_create(
                [
                    PostingLine(posting=posting, account=credit, unit="session", amount=-1),
                    PostingLine(posting=posting, account=reserved, unit="session", amount=1),
                ]
            )
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    for number in range(count):
        event_id = f"evt_{number - number % 10 if number % 10 == 9 else number}"  # every tenth a replay
        with transaction.atomic():
            row = services.webhook_record(
                provider="stripe", event_id=event_id, type="customer.updated", object_id="cus_1"
            )
        if row is not None:
            services.webhook_process(event_pk=row.pk)
    webhook_s = time.perf_counter() - started

    started = time.perf_counter()
    for number in range(count):
        with transaction.atomic():
            WebhookEvent.objects.create(
                provider="bare", event_id=f"evt_{number}", type="customer.updated", object_id="cus_1"
            )
    webhook_baseline_s = time.perf_counter() - started
    return {
        "ledger_per_s": count / ledger_s,
        "ledger_baseline_per_s": count / baseline_s,
        "webhook_per_s": count / webhook_s,
        "webhook_baseline_per_s": count / webhook_baseline_s,
    }


if __name__ == "__main__":
    main()
