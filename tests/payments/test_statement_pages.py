"""A payer's statement past 200 entries: pages of 200, newest first, page links (first,
last and two either side), a bad or out-of-range page shows the nearest one; in Chromium
at 360 px the pager fits, is axe-clean and is followed by keyboard."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.payments.factories import PayerAccountFactory, PayerMemberFactory
from tutoring_core.payments import ledger
from tutoring_core.payments.models import PayerAccount


def _entries(payer: PayerAccount, count: int) -> None:
    """``count`` statement entries: credit of 1..count sessions, each issued by its own posting."""
    credit = ledger.account(tenant_id=payer.tenant_id, purpose="credit", unit="session", payer=payer)
    issued = ledger.account(tenant_id=payer.tenant_id, purpose="issued", unit="session")
    for number in range(1, count + 1):
        ledger.post(
            tenant_id=payer.tenant_id,
            reference=f"test:{number}",
            kind="grant",
            memo=f"Grant number {number}",
            lines=[(credit, 1), (issued, -1)],
        )


def _rows(html: str) -> list[str]:
    return re.findall(r"Grant number (\d+)<", html)


@pytest.mark.django_db
def test_the_statement_pages_past_200_entries(client: Any) -> None:
    payer = PayerAccountFactory(name="Nguyen family")
    member = UserFactory(tenant=payer.tenant)
    PayerMemberFactory(payer=payer, user=member)
    _entries(payer, 205)
    client.force_login(member)
    url = reverse("payments:statement", kwargs={"payer_id": payer.pk})

    first = client.get(url).content.decode()
    assert _rows(first) == [str(n) for n in range(205, 5, -1)]  # newest first, 200 of them
    assert "Page 1 of 2 (205 entries, newest first)" in first
    assert (
        '<a href="?page=1#entries-title" aria-current="page"><span class="sr-only">Page </span>1</a>' in first
    )
    assert (
        '<a href="?page=2#entries-title" rel="next">Older<span class="sr-only"> entries</span></a>' in first
    )
    assert 'rel="prev"' not in first

    second = client.get(url, {"page": "2"}).content.decode()
    assert _rows(second) == ["5", "4", "3", "2", "1"]
    assert "Page 2 of 2 (205 entries, newest first)" in second
    assert (
        '<a href="?page=1#entries-title" rel="prev">Newer<span class="sr-only"> entries</span></a>' in second
    )
    assert 'rel="next"' not in second
    # The running balance of the oldest entry is its own: 1 session.
    assert "<strong>205 sessions</strong>" in second

    # Past the last page: the last; not a number: the first.
    assert _rows(client.get(url, {"page": "9"}).content.decode()) == ["5", "4", "3", "2", "1"]
    assert _rows(client.get(url, {"page": "x"}).content.decode())[:1] == ["205"]


def test_page_links_show_first_last_and_neighbours() -> None:
    from tutoring_core.payments.views import _page_window

    assert _page_window(1, 1) == [1]
    assert _page_window(1, 9) == [1, 2, 3, None, 9]
    assert _page_window(5, 9) == [1, None, 3, 4, 5, 6, 7, None, 9]
    assert _page_window(9, 9) == [1, None, 7, 8, 9]
    assert _page_window(4, 6) == [1, 2, 3, 4, 5, 6]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_pager_fits_360px_and_works_by_keyboard(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_payments_browser import _fits_and_is_accessible
    from tests.e2e.test_scheduling_browser import _browser

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    payer = PayerAccountFactory(name="Łukasiewicz family")
    member = UserFactory(tenant=payer.tenant, username="zoe")
    PayerMemberFactory(payer=payer, user=member)
    _entries(payer, 1450)  # 8 pages: the pager leaves some out
    client = Client()
    client.force_login(member)
    url = f"{live_server.url}/payments/accounts/{payer.pk}/"
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = _browser(playwright, Path(profile), viewport={"width": 360, "height": 740})
        try:
            name = django_settings.SESSION_COOKIE_NAME
            context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": live_server.url}])
            page = context.new_page()
            page.goto(url)
            _fits_and_is_accessible(page)
            pager = page.get_by_role("navigation", name="Account activity pages")
            assert pager.get_by_role("link").all_inner_texts() == [
                "Page 1",
                "Page 2",
                "Page 3",
                "Page 8",
                "Older entries",
            ]
            # By keyboard: focus the "Older" link and follow it with Enter.
            pager.get_by_role("link", name="Older entries").focus()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url.endswith("?page=2#entries-title")
            assert pager.locator("[aria-current=page]").inner_text() == "Page 2"
            assert "Page 2 of 8 (1450 entries, newest first)" in pager.inner_text()
            _fits_and_is_accessible(page)
        finally:
            context.close()
