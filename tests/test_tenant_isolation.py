"""Walks every URL pattern that takes an object id and every admin model, and
asserts that a district admin of another tenant gets 404 for each object."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import tests
from tests.factories import TenantFactory, district_admin
from tests.isolation import ADMIN_MODELS, EXEMPT_URL_NAMES, NOT_OBJECT_IDS, URL_PARAMS

ADMIN_OBJECT_VIEWS = ("change", "delete", "history")


def _load_registrations() -> None:
    root = Path(tests.__file__).parent
    for module in root.rglob("isolation.py"):
        if module.parent == root:
            continue
        dotted = ".".join(module.relative_to(root.parent).with_suffix("").parts)
        importlib.import_module(dotted)


_load_registrations()


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> list[tuple[str, str, list[str]]]:
    found = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin":
                continue  # the admin is walked model by model below
            ns = entry.namespace or ""
            found += _walk(
                entry.url_patterns, prefix + str(entry.pattern), f"{namespace}{ns}:" if ns else namespace
            )
        elif isinstance(entry, URLPattern):
            params = list(entry.pattern.regex.groupindex)
            if params and entry.name:
                found.append((f"{namespace}{entry.name}", prefix + str(entry.pattern), params))
    return found


ID_PATTERNS = [p for p in _walk(get_resolver().url_patterns) if p[0].split(":")[-1] not in EXEMPT_URL_NAMES]


def test_walker_finds_the_core_urls() -> None:
    names = {name for name, _, _ in ID_PATTERNS}
    assert "web:class_detail" in names


@pytest.mark.parametrize(("name", "route", "params"), ID_PATTERNS, ids=[p[0] for p in ID_PATTERNS])
def test_other_tenant_gets_404(client: Any, db: Any, name: str, route: str, params: list[str]) -> None:
    owner_tenant = TenantFactory(slug="owner-district")
    outsider = district_admin(TenantFactory(slug="outsider-district"))
    kwargs = {}
    for param in params:
        if param in NOT_OBJECT_IDS:
            continue
        assert param in URL_PARAMS, (
            f"URL {name} ({route}) takes {param!r}: register a maker for it in tests/<app>/isolation.py "
            "so the tenant-isolation walker can test it."
        )
        kwargs[param] = URL_PARAMS[param](owner_tenant)
    for param in params:
        if param in NOT_OBJECT_IDS:
            kwargs[param] = owner_tenant.slug if "tenant" in param else "x"
    url = reverse(name, kwargs=kwargs)
    client.force_login(outsider)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (
            f"{method.upper()} {url} answered {response.status_code} to another tenant"
        )


ADMIN_CASES = sorted(
    model._meta.label
    for model, model_admin in admin.site._registry.items()
    if model._meta.app_label != "auth"
)


@pytest.mark.parametrize("label", ADMIN_CASES)
def test_admin_other_tenant_gets_404(client: Any, db: Any, label: str) -> None:
    assert label in ADMIN_MODELS, f"Admin model {label}: register a maker in tests/<app>/isolation.py."
    owner_tenant = TenantFactory(slug="owner-district")
    outsider = district_admin(TenantFactory(slug="outsider-district"))
    obj = ADMIN_MODELS[label](owner_tenant)
    client.force_login(outsider)
    app_label, model_name = label.lower().split(".")
    model_admin = admin.site._registry[type(obj)]
    request = RequestFactory().get("/")
    request.user = outsider
    for view in ADMIN_OBJECT_VIEWS:
        url = reverse(f"admin:{app_label}_{model_name}_{view}", args=[obj.pk])
        response = client.get(url)
        # A view nobody may use (deleting audit entries) refuses before any lookup,
        # which reveals nothing about the id either.
        expected = 403 if view == "delete" and not model_admin.has_delete_permission(request) else 404
        assert response.status_code == expected, (
            f"GET {url} answered {response.status_code} to another tenant"
        )
    changelist = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    if changelist.status_code == 200:
        assert not re.search(re.escape(f"/{obj.pk}/change/"), changelist.content.decode())
