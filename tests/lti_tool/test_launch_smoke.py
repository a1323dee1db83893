from __future__ import annotations

import pytest

from tests.lti_tool.conftest import run_launch
from tests.peers.lti_platform import ROLE_INSTRUCTOR

pytestmark = pytest.mark.peer


def test_smoke(client, platform, registration):
    spec = platform.launch(
        sub="teacher-1", roles=[ROLE_INSTRUCTOR], name="Terry Okafor", email="t@example.org"
    )
    result = run_launch(client, platform, spec)
    print(result.response.status_code, result.response.content[:2000])
    assert result.response.status_code == 302
