"""EMAIL_URL through config/env.py: each form, and malformed values named at start-up."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import Env

SMTP = "django.core.mail.backends.smtp.EmailBackend"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", {}),
        ("console://", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
        ("locmem://", {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}),
        (
            "smtp://hub%40example.org:p%40ss@smtp.example.org",
            {
                "EMAIL_BACKEND": SMTP,
                "EMAIL_HOST": "smtp.example.org",
                "EMAIL_PORT": 587,
                "EMAIL_USE_TLS": True,
                "EMAIL_USE_SSL": False,
                "EMAIL_HOST_USER": "hub@example.org",
                "EMAIL_HOST_PASSWORD": "p@ss",
            },
        ),
        (
            "smtps://u:p@mail.example.org:2465",
            {
                "EMAIL_BACKEND": SMTP,
                "EMAIL_HOST": "mail.example.org",
                "EMAIL_PORT": 2465,
                "EMAIL_USE_TLS": False,
                "EMAIL_USE_SSL": True,
                "EMAIL_HOST_USER": "u",
                "EMAIL_HOST_PASSWORD": "p",
            },
        ),
        (
            "smtp+plain://127.0.0.1",
            {
                "EMAIL_BACKEND": SMTP,
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": 25,
                "EMAIL_USE_TLS": False,
                "EMAIL_USE_SSL": False,
                "EMAIL_HOST_USER": "",
                "EMAIL_HOST_PASSWORD": "",
            },
        ),
    ],
)
def test_email_url_forms(url: str, expected: dict[str, object]) -> None:
    assert Env({"EMAIL_URL": url}).email("EMAIL_URL") == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "imap://mail.example.org",
            "EMAIL_URL must start with smtp://, smtps://, smtp+plain://, console:// or locmem://, not imap://.",
        ),
        ("smtp://", "EMAIL_URL names no host (smtp://user:password@host:port)."),
        ("smtp://mail.example.org:port", "EMAIL_URL has a port that is not a number."),
    ],
)
def test_malformed_email_url_is_named(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        Env({"EMAIL_URL": url}).email("EMAIL_URL")
    assert str(refused.value) == message
