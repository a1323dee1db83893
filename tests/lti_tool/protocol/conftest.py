"""protocol/ tests run without Django's database: the app-level autouse fixtures
(cache table, key pool) are replaced by no-ops here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _lti_settings() -> None:
    return None


@pytest.fixture(autouse=True)
def _tool_key_pool() -> None:
    return None
