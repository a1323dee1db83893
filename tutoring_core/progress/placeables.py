"""Things of a class that an LMS can place and open, offered by integrations.

An integration that has such things (SCORM courses) registers a provider under a
prefix at start-up (its AppConfig.ready); another integration that places things
in an LMS (lti_tool's deep linking) lists them and, when a placed link is
launched, finds the one its key names. Neither imports the other: both meet here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable

from tutoring_core.progress.data import Placeable

logger = logging.getLogger(__name__)

# (tenant_id, class_id) -> the provider's placeables for that class.
PlaceableLister = Callable[[uuid.UUID, uuid.UUID], Iterable[Placeable]]
# (tenant_id, class_id, ref) -> the one ``<prefix>:<ref>`` names, or None.
PlaceableFinder = Callable[[uuid.UUID, uuid.UUID, str], "Placeable | None"]

_PROVIDERS: dict[str, tuple[PlaceableLister, PlaceableFinder]] = {}


def placeable_register(*, prefix: str, list_for_class: PlaceableLister, find: PlaceableFinder) -> None:
    """Offer the things keyed ``<prefix>:<ref>`` (idempotent: a second call replaces)."""
    if not prefix or ":" in prefix:
        raise ValueError("A placeable prefix is a non-empty word without ':'.")
    _PROVIDERS[prefix] = (list_for_class, find)


def placeables_for_class(*, tenant_id: uuid.UUID, class_id: uuid.UUID) -> list[Placeable]:
    """Every provider's placeables for the class, providers in prefix order."""
    found: list[Placeable] = []
    for prefix in sorted(_PROVIDERS):
        lister, _find = _PROVIDERS[prefix]
        found.extend(lister(tenant_id, class_id))
    return found


def placeable_get(*, tenant_id: uuid.UUID, class_id: uuid.UUID, key: str) -> Placeable | None:
    """The placeable ``key`` names in the class, or None (unknown prefix, removed thing,
    another tenant's)."""
    prefix, sep, ref = str(key).partition(":")
    provider = _PROVIDERS.get(prefix)
    if not sep or not ref or provider is None:
        return None
    return provider[1](tenant_id, class_id, ref)
