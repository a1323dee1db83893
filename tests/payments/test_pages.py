"""The payer's pages: packages with the price and the policy before paying, invoice and
card purchases (Stripe Elements against localstripe: the test does what Stripe.js does in
the browser), saved cards through SetupIntents, the statement, who may see what."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.urls import reverse

from tests.factories import UserFactory, district_admin
from tests.payments.conftest import API_KEY
from tests.payments.factories import (
    PackageFactory,
    PayerAccountFactory,
    PayerMemberFactory,
    PaymentSettingsFactory,
)
from tests.peers.localstripe import LocalStripe
from tutoring_core.accounts.models import AuditLog
from tutoring_core.payments.models import LedgerAccount, PayerAccount, Posting, Purchase

pytestmark = pytest.mark.django_db

POLICY = (
    "Booking reserves the session's credit. Cancel at least 24 hours before the start and you get all "
    "of it back. Cancel later and 50% of it is used up and the rest comes back to you. If the student "
    "does not attend, it is used up. If the tutor does not attend, you get all of it back."
)


@pytest.fixture
def family(db: Any) -> dict[str, Any]:
    payer = PayerAccountFactory(name="Nguyen family")
    tenant = payer.tenant
    guardian = UserFactory(tenant=tenant, username="grace", first_name="Grace", last_name="Nguyen")
    PayerMemberFactory(payer=payer, user=guardian)
    package = PackageFactory(tenant=tenant, name="Five sessions", quantity=5, amount_minor=25000)
    return {"tenant": tenant, "payer": payer, "guardian": guardian, "package": package}


def _settings(family: dict[str, Any], provider: str, **extra: Any) -> None:
    PaymentSettingsFactory(
        tenant=family["tenant"],
        provider=provider,
        booking_requires="credit",
        late_cancel_forfeit_percent=50,
        **extra,
    )


def _credit(payer: Any) -> int:
    row = LedgerAccount.objects.filter(payer=payer, purpose="credit", unit="session").first()
    return row.balance if row else 0


def test_the_price_and_the_policy_show_before_paying(client: Any, family: dict[str, Any]) -> None:
    _settings(family, "invoice")
    client.force_login(family["guardian"])
    html = client.get(reverse("payments:buy", kwargs={"payer_id": family["payer"].pk})).content.decode()
    escaped = POLICY.replace("'", "&#x27;")
    assert f'<p id="policy-text">{escaped}</p>' in html
    assert '<span class="price">USD 250.00</span>' in html
    assert 'label for="purchase-order">Purchase order number (optional)</label>' in html
    # The policy comes before the form's submit button.
    assert html.index("policy-text") < html.index('id="buy-submit"')


def test_ordering_on_invoice_needs_the_policy_read_and_grants_credit(
    client: Any, family: dict[str, Any]
) -> None:
    _settings(family, "invoice")
    client.force_login(family["guardian"])
    url = reverse("payments:buy", kwargs={"payer_id": family["payer"].pk})
    refused = client.post(url, {"package_id": str(family["package"].pk), "purchase_order": "PO-12"})
    assert refused.status_code == 400
    assert "Confirm that you have read the cancellation policy." in refused.content.decode()
    assert (Purchase.objects.count(), Posting.objects.count()) == (0, 0)
    response = client.post(
        url, {"package_id": str(family["package"].pk), "purchase_order": "PO-12", "policy_read": "yes"}
    )
    purchase = Purchase.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("payments:statement", kwargs={"payer_id": family["payer"].pk})
    assert (purchase.status, purchase.purchase_order, _credit(family["payer"])) == ("invoiced", "PO-12", 5)
    html = client.get(response["Location"]).content.decode()
    assert f"Ordered on invoice {purchase.provider_ref}; the credit is yours now." in html
    assert "<strong>5 sessions</strong>" in html
    assert '<strong class="neg">USD -250.00</strong>' in html
    assert reverse("payments:document", kwargs={"purchase_id": purchase.pk}) in html
    # The balance over time, as an inline SVG with its words beside it.
    assert "Spendable credit (session) over its last 1 change: now 5, lowest 0, highest 5." in html
    assert '<polyline points="0,56 300,4"/>' in html


def test_an_unknown_package_is_refused_with_its_field(client: Any, family: dict[str, Any]) -> None:
    _settings(family, "invoice")
    other = PackageFactory()  # another tenant's package
    client.force_login(family["guardian"])
    for package_id in (str(other.pk), "not-a-uuid", ""):
        response = client.post(
            reverse("payments:buy", kwargs={"payer_id": family["payer"].pk}),
            {"package_id": package_id, "policy_read": "yes"},
        )
        assert response.status_code == 404
        assert "No such package." in response.content.decode()
    assert Purchase.objects.count() == 0


def test_only_members_and_district_admins_see_a_payer(client: Any, family: dict[str, Any]) -> None:
    _settings(family, "invoice")
    payer = family["payer"]
    bystander = UserFactory(tenant=family["tenant"], username="bystander")
    client.force_login(bystander)
    for name in ("statement", "buy"):
        assert client.get(reverse(f"payments:{name}", kwargs={"payer_id": payer.pk})).status_code == 404
    assert (
        "You do not pay through any account here." in client.get(reverse("payments:payers")).content.decode()
    )
    admin = district_admin(family["tenant"])
    school = PayerAccountFactory(tenant=family["tenant"], name="Lincoln Middle School", kind="school")
    client.force_login(admin)
    html = client.get(reverse("payments:payers")).content.decode()
    assert html.index("Lincoln Middle School") < html.index("Nguyen family")
    assert client.get(reverse("payments:statement", kwargs={"payer_id": school.pk})).status_code == 200
    # A member with one account goes straight to its statement.
    client.force_login(family["guardian"])
    response = client.get(reverse("payments:payers"))
    assert response["Location"] == reverse("payments:statement", kwargs={"payer_id": payer.pk})


# --- cards through Stripe Elements, against localstripe ---------------------------------------


def _browser_sets_up_card(peer: LocalStripe, client_secret: str, number: str) -> dict[str, Any]:
    """What Stripe.js confirmCardSetup sends from the browser (publishable key, client secret)."""
    seti = client_secret.split("_secret_")[0]
    response = requests.post(
        f"{peer.base_url}/v1/setup_intents/{seti}/confirm",
        json={
            "key": "pk_test_hub",
            "client_secret": client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {"number": number, "exp_month": "12", "exp_year": "2031", "cvc": "123"},
            },
        },
        auth=(API_KEY, ""),
        timeout=10,
    )
    return dict(response.json())


def _start_card_purchase(client: Any, family: dict[str, Any]) -> tuple[Purchase, str]:
    client.force_login(family["guardian"])
    response = client.post(
        reverse("payments:buy", kwargs={"payer_id": family["payer"].pk}),
        {"package_id": str(family["package"].pk), "policy_read": "yes"},
    )
    purchase = Purchase.objects.get()
    assert response["Location"] == reverse("payments:pay", kwargs={"purchase_id": purchase.pk})
    page = client.get(response["Location"])
    html = page.content.decode()
    secret = html.split('data-setup-secret="')[1].split('"')[0]
    return purchase, secret


def test_card_payment_with_3d_secure_then_the_saved_card(
    client: Any, family: dict[str, Any], stripe_peer: LocalStripe, settings: Any
) -> None:
    settings.STRIPE_JS_URL = stripe_peer.base_url + "/js.stripe.com/v3/"
    _settings(family, "stripe")
    purchase, secret = _start_card_purchase(client, family)
    assert secret.startswith("seti_")
    html = client.get(reverse("payments:pay", kwargs={"purchase_id": purchase.pk})).content.decode()
    assert f'<script src="{stripe_peer.base_url}/js.stripe.com/v3/"></script>' in html
    assert '<dt>Amount</dt><dd id="pay-amount">USD 250.00</dd>' in html
    # The 3-D Secure test card: its setup asks for authentication, then the payment again.
    setup = _browser_sets_up_card(stripe_peer, secret, "4000002500003155")
    assert setup["status"] == "requires_action"
    requests.post(
        f"{stripe_peer.base_url}/v1/setup_intents/{setup['id']}/confirm",
        json={"key": "pk_test_hub", "client_secret": secret},
        auth=(API_KEY, ""),
        timeout=10,
    ).raise_for_status()
    confirm = client.post(
        reverse("payments:pay_confirm", kwargs={"purchase_id": purchase.pk}),
        {"setup_intent": setup["id"], "save_card": "1"},
    )
    answer = confirm.json()
    assert (confirm.status_code, answer["status"], answer["purchase_status"]) == (
        200,
        "requires_action",
        "pending",
    )
    assert answer["client_secret"].startswith(purchase.provider_ref + "_secret_")
    assert _credit(family["payer"]) == 0
    stripe_peer.authenticate(purchase.provider_ref, answer["client_secret"])  # confirmCardPayment
    done = client.post(reverse("payments:pay_done", kwargs={"purchase_id": purchase.pk}))
    assert done["Location"] == reverse("payments:statement", kwargs={"payer_id": family["payer"].pk})
    purchase.refresh_from_db()
    assert (purchase.status, _credit(family["payer"])) == ("paid", 5)
    payer = PayerAccount.objects.get(pk=family["payer"].pk)
    assert payer.stripe_payment_method_id.startswith("pm_")
    assert AuditLog.objects.filter(action="payments.card.saved").count() == 1

    # A second package with the saved card: no card fields needed (4000002500003155 asks again).
    response = client.post(
        reverse("payments:buy", kwargs={"payer_id": payer.pk}),
        {"package_id": str(family["package"].pk), "policy_read": "yes"},
    )
    second = Purchase.objects.exclude(pk=purchase.pk).get()
    assert "The card saved for Nguyen family" in client.get(response["Location"]).content.decode()
    answer = client.post(
        reverse("payments:pay_confirm", kwargs={"purchase_id": second.pk}), {"use_saved": "1"}
    ).json()
    assert answer["status"] == "requires_action"
    stripe_peer.authenticate(second.provider_ref, answer["client_secret"])
    client.post(reverse("payments:pay_done", kwargs={"purchase_id": second.pk}))
    second.refresh_from_db()
    assert (second.status, _credit(payer)) == ("paid", 10)


def test_a_plain_card_pays_at_once_and_a_declined_one_changes_nothing(
    client: Any, family: dict[str, Any], stripe_peer: LocalStripe
) -> None:
    _settings(family, "stripe")
    purchase, secret = _start_card_purchase(client, family)
    declined = _browser_sets_up_card(stripe_peer, secret, "4000000000000002")
    assert declined["error"]["message"] == "Your card was declined."
    setup = _browser_sets_up_card(stripe_peer, secret, "4242424242424242")
    answer = client.post(
        reverse("payments:pay_confirm", kwargs={"purchase_id": purchase.pk}), {"setup_intent": setup["id"]}
    ).json()
    assert answer == {"status": "succeeded", "client_secret": "", "purchase_status": "paid"}
    assert _credit(family["payer"]) == 5
    # Not asked to save: nothing saved.
    assert PayerAccount.objects.get(pk=family["payer"].pk).stripe_payment_method_id == ""


def test_another_payers_card_setup_is_refused(
    client: Any, family: dict[str, Any], stripe_peer: LocalStripe
) -> None:
    _settings(family, "stripe")
    purchase, _secret = _start_card_purchase(client, family)
    # Another family of the same tenant sets up a card; its SetupIntent id is handed in here.
    other = PayerAccountFactory(tenant=family["tenant"], name="Okafor family")
    other_parent = UserFactory(tenant=family["tenant"], username="ola")
    PayerMemberFactory(payer=other, user=other_parent)
    client.force_login(other_parent)
    card_page = client.get(reverse("payments:card", kwargs={"payer_id": other.pk})).content.decode()
    other_secret = card_page.split('data-setup-secret="')[1].split('"')[0]
    other_setup = _browser_sets_up_card(stripe_peer, other_secret, "4242424242424242")
    client.force_login(family["guardian"])
    response = client.post(
        reverse("payments:pay_confirm", kwargs={"purchase_id": purchase.pk}),
        {"setup_intent": other_setup["id"]},
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "That card setup belongs to another payer.", "field": "setup_intent"},
    )
    purchase.refresh_from_db()
    assert (purchase.status, _credit(family["payer"])) == ("pending", 0)
    # Saving that card on the other family's page works, for them.
    client.force_login(other_parent)
    saved = client.post(
        reverse("payments:card", kwargs={"payer_id": other.pk}), {"setup_intent": other_setup["id"]}
    )
    assert saved.json() == {"next": reverse("payments:statement", kwargs={"payer_id": other.pk})}
    assert PayerAccount.objects.get(pk=other.pk).stripe_payment_method_id.startswith("pm_")


def test_confirm_and_done_take_post_only_after_the_lookup(client: Any, family: dict[str, Any]) -> None:
    _settings(family, "invoice")
    client.force_login(family["guardian"])
    from tests.payments.factories import PurchaseFactory

    purchase = PurchaseFactory(tenant=family["tenant"], payer=family["payer"], package=family["package"])
    for name in ("pay_confirm", "pay_done"):
        assert client.get(reverse(f"payments:{name}", kwargs={"purchase_id": purchase.pk})).status_code == 405
    answer = client.post(
        reverse("payments:pay_confirm", kwargs={"purchase_id": purchase.pk}), {"use_saved": "1"}
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "This purchase is not paid by card.")
