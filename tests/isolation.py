"""The registry behind the tenant-isolation walker (tests/test_tenant_isolation.py).

Every URL parameter that names an object, and every model in the admin, needs a
maker here that creates one such object in a given tenant and returns the value
to put in the URL. Apps register theirs in ``tests/<app>/isolation.py``; the
walker imports every such module. A new URL whose parameter has no maker fails
the walker, so nobody has to remember to test isolation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tutoring_core.accounts.models import Tenant

ParamMaker = Callable[[Tenant], Any]
ModelMaker = Callable[[Tenant], Any]

URL_PARAMS: dict[str, ParamMaker] = {}
ADMIN_MODELS: dict[str, ModelMaker] = {}
# URL parameters that are not object ids (a tenant slug in a public SSO URL, a
# format name); each needs a reason.
NOT_OBJECT_IDS: dict[str, str] = {}
# URL names the walker must not call as a signed-in user, with the reason
# (e.g. a machine-to-machine endpoint with its own authentication, tested apart).
EXEMPT_URL_NAMES: dict[str, str] = {}


def url_param(name: str) -> Callable[[ParamMaker], ParamMaker]:
    def register(maker: ParamMaker) -> ParamMaker:
        URL_PARAMS[name] = maker
        return maker

    return register


def admin_model(label: str) -> Callable[[ModelMaker], ModelMaker]:
    def register(maker: ModelMaker) -> ModelMaker:
        ADMIN_MODELS[label] = maker
        return maker

    return register
