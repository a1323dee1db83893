"""Paying for tutoring in headless Chromium, against localstripe on loopback.

A guardian opens the family's statement, buys a package after reading the policy, types a
3-D Secure test card into Stripe's card fields (localstripe's mock Stripe.js, served by the
peer at /js.stripe.com/v3/, stands in for Stripe's frames), completes both authentication
prompts, and books a session for their child with the credit; the statement then shows the
purchase and the booked session. Every payment page is checked at 360 px wide (no sideways
scrolling) and with axe-core (no serious or critical violation), and reached by keyboard.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.e2e.test_scheduling_browser import _axe_serious, _browser
from tests.payments.conftest import localstripe_peer, stripe_peer  # noqa: F401 - fixtures
from tests.peers.localstripe import LocalStripe

pytestmark = [pytest.mark.browser, pytest.mark.peer]


@pytest.fixture
def env(
    live_server: Any,
    stripe_peer: LocalStripe,  # noqa: F811 - the fixture imported above
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.STRIPE_JS_URL = stripe_peer.base_url + "/js.stripe.com/v3/"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_hub"
    from tests.factories import (
        ClassFactory,
        EnrollmentFactory,
        GuardianLinkFactory,
        TenantFactory,
        UserFactory,
    )
    from tests.payments.factories import (
        PackageFactory,
        PayerAccountFactory,
        PayerMemberFactory,
        PaymentSettingsFactory,
    )
    from tests.scheduling.factories import AvailabilityRuleFactory, TutorProfileFactory
    from tutoring_core.accounts.models import Role

    tenant = TenantFactory(slug="north", name="North District", time_zone="America/Chicago")
    PaymentSettingsFactory(
        tenant=tenant, provider="stripe", booking_requires="credit", late_cancel_forfeit_percent=50
    )
    tutor = UserFactory(tenant=tenant, username="priya", first_name="Priya", last_name="Shah")
    profile = TutorProfileFactory(
        user=tutor, session_lengths=[60], subjects=["Algebra"], bio="Algebra coach."
    )
    for day in range(7):
        AvailabilityRuleFactory(tutor=profile, weekday=day, start_minute=0, end_minute=1440)
    klass = ClassFactory(tenant=tenant, title="Algebra I")
    student = UserFactory(tenant=tenant, username="ava", first_name="Ava", last_name="Nguyen")
    EnrollmentFactory(klass=klass, user=student, role=Role.STUDENT)
    guardian = UserFactory(tenant=tenant, username="grace", first_name="Grace", last_name="Nguyen")
    GuardianLinkFactory(tenant=tenant, guardian=guardian, student=student)
    payer = PayerAccountFactory(tenant=tenant, name="Nguyen family")
    PayerMemberFactory(payer=payer, user=guardian)
    PayerMemberFactory(payer=payer, user=student)
    PackageFactory(tenant=tenant, name="Four sessions", quantity=4, amount_minor=18000)
    yield {
        "base": live_server.url,
        "guardian": guardian,
        "payer": payer,
        "klass": klass,
        "student": student,
        "tutor": tutor,
    }


def _signed_in(context: Any, base: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.clear_cookies()
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def _fits_and_is_accessible(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px at 360px"
    assert _axe_serious(page) == [], page.url


def test_guardian_buys_by_card_with_3d_secure_and_books_with_the_credit(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    from tutoring_core.payments.models import BookingCharge, LedgerAccount, Purchase

    base = env["base"]
    payer = env["payer"]
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile), viewport={"width": 360, "height": 740})
        try:
            page = context.new_page()
            _signed_in(context, base, env["guardian"])
            page.goto(base + "/")
            page.get_by_role("link", name="Buy tutoring and see your family's statement.").click()
            page.wait_for_url(f"**/payments/accounts/{payer.pk}/")
            _fits_and_is_accessible(page)
            page.get_by_role("link", name="Buy tutoring").click()
            page.wait_for_url("**/buy/")
            assert "If the student does not attend, it is used up." in page.content()
            _fits_and_is_accessible(page)

            # By keyboard: the package (first, chosen), the policy box, then submit.
            page.get_by_label("I have read the cancellation and no-show policy above.").focus()
            page.keyboard.press("Space")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            page.wait_for_url("**/pay/")
            page.wait_for_selector("#card-element input")
            _fits_and_is_accessible(page)

            # Stripe's card fields (the mock's): a card that asks for 3-D Secure.
            fields = {"number": "4000002500003155", "exp_month": "12", "exp_year": "31", "cvc": "123"}
            for name, value in fields.items():
                page.locator(f"#card-element input[placeholder={name}]").fill(value)
            page.locator("#card-element input[placeholder=postal_code]").fill("60601")
            page.get_by_role("button", name="Pay USD 180.00").click()
            # 3-D Secure twice: when the card is set up, then for the payment itself.
            page.get_by_role("button", name="Complete authentication").click()
            page.get_by_role("button", name="Complete authentication").click()
            page.wait_for_url(f"**/payments/accounts/{payer.pk}/")
            assert "Paid USD 180.00: the credit is yours now." in page.content()
            _fits_and_is_accessible(page)

            # The page that saves a card for card-authorised bookings.
            page.get_by_role("link", name="Save a card").click()
            page.wait_for_selector("#card-element input")
            _fits_and_is_accessible(page)

            # Book a session for Ava with the credit.
            page.goto(f"{base}/scheduling/classes/{env['klass'].pk}/book/")
            page.get_by_label("Book for").select_option(str(env["student"].pk))
            page.locator("button.slot").first.click()
            page.wait_for_url("**/confirm/")
            page.locator("#confirm-booking").click()
            page.wait_for_selector("text=Your session is booked.")

            page.goto(f"{base}/payments/accounts/{payer.pk}/")
            html = page.content()
            _fits_and_is_accessible(page)
        finally:
            context.close()
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.amount_minor) == ("paid", 18000)
    charge = BookingCharge.objects.get()
    assert (charge.student, charge.unit, charge.amount, charge.status) == (
        env["student"],
        "session",
        1,
        "reserved",
    )
    balances = {row.purpose: row.balance for row in LedgerAccount.objects.filter(payer=payer, unit="session")}
    assert balances == {"credit": 3, "reserved": 1}
    # The statement shows both: the paid purchase with its receipt, and the booked session.
    assert "Four sessions" in html and "USD 180.00" in html and "Receipt (PDF)" in html
    assert "Ava Nguyen" in html and "Reserved" in html
    assert "<strong>3 sessions</strong>" in html
