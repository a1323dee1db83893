"""Typed readers for settings that come from the environment.

Every reader raises ``ImproperlyConfigured`` naming the variable when a value is
malformed, so a bad deployment stops at start-up instead of misbehaving later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

# Aliases: inside Env the names str and list are its own methods.
_Str = str
_List = list
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    def __init__(self, environ: Mapping[_Str, _Str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: _Str) -> _Str | None:
        value = self.environ.get(name)
        return None if value is None else value.strip()

    def str(self, name: _Str, default: _Str | None = None, *, required: bool = False) -> _Str:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise ImproperlyConfigured(f"{name} must be set.")
            if default is None:
                return ""
            return default
        return value

    def bool(self, name: _Str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no/on/off, not {value!r}.")

    def int(self, name: _Str, default: int, *, minimum: int | None = None) -> int:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
        return number

    def float(self, name: _Str, default: float) -> float:
        value = self.raw(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None

    def list(self, name: _Str, default: _List[_Str] | None = None) -> _List[_Str]:
        value = self.raw(name)
        if value is None or value == "":
            return list(default or [])
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name: _Str, choices: tuple[_Str, ...], default: _Str) -> _Str:
        value = self.str(name, default)
        if value not in choices:
            raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
        return value

    def database(self, name: _Str, default: _Str) -> dict[_Str, object]:
        import dj_database_url

        url = self.str(name, default)
        try:
            config = dj_database_url.parse(url, conn_max_age=self.int("DATABASE_CONN_MAX_AGE", 60))
        except Exception as exc:  # dj_database_url raises several types for bad URLs
            raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
        if not config.get("ENGINE"):
            raise ImproperlyConfigured(f"{name} names an unsupported database: {url!r}.")
        return dict(config)

    def email(self, name: _Str) -> dict[_Str, object]:
        """Django email settings from one URL (empty: nothing): smtp:// (STARTTLS, port 587),
        smtps:// (implicit TLS, 465), smtp+plain:// (neither, 25), console://, locmem://."""
        from urllib.parse import unquote, urlsplit

        url = self.str(name)
        if not url:
            return {}
        parts = urlsplit(url)
        if parts.scheme in ("console", "locmem"):
            return {"EMAIL_BACKEND": f"django.core.mail.backends.{parts.scheme}.EmailBackend"}
        ports = {"smtp": 587, "smtps": 465, "smtp+plain": 25}
        if parts.scheme not in ports:
            raise ImproperlyConfigured(
                f"{name} must start with smtp://, smtps://, smtp+plain://, console:// or locmem://, "
                f"not {parts.scheme}://."
            )
        try:
            port = parts.port or ports[parts.scheme]
        except ValueError:
            raise ImproperlyConfigured(f"{name} has a port that is not a number.") from None
        if not parts.hostname:
            raise ImproperlyConfigured(f"{name} names no host (smtp://user:password@host:port).")
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": port,
            "EMAIL_USE_TLS": parts.scheme == "smtp",
            "EMAIL_USE_SSL": parts.scheme == "smtps",
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        }


env = Env()
