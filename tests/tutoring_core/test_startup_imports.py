"""What every process pays for at start-up: ``django.setup()`` with all apps loaded (as
``manage.py``, a Celery worker or bench/scorm.py's import child) leaves the heavy protocol
libraries unimported. They load where they are used: python3-saml and xmlsec in the SSO
sign-in and its admin pages, pylti1p3 and requests' LTI clients in the launch views,
the OneRoster REST clients in a sync, django-ninja and pydantic with the API's URLconf.

Together they were ~30 MB of every process's RSS (issue 14: the SCORM import's peak RSS
limit of 100 MB, bench/scorm.py). Checked in a fresh interpreter, so nothing this test
run already imported counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages that must not be in sys.modules after django.setup().
HEAVY = ("onelogin", "saml2", "xmlsec", "lxml", "pydantic", "pydantic_core", "ninja", "pylti1p3", "authlib")

SHOW = (
    "import json, sys, django; django.setup();"
    "from django.apps import apps;"
    "print(json.dumps({'apps': len(apps.get_app_configs()),"
    " 'modules': sorted({m.split('.')[0] for m in sys.modules})}))"
)


def _startup_modules(**extra: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_django_setup_leaves_the_protocol_libraries_unimported() -> None:
    loaded = _startup_modules()
    assert loaded["apps"] > 20  # every app really was loaded (admin modules included)
    assert sorted(set(HEAVY) & set(loaded["modules"])) == []


def test_the_api_docs_page_does_not_make_ninja_a_startup_import() -> None:
    # API_DOCS serves ninja's page and scripts without "ninja" in INSTALLED_APPS.
    from django.conf import settings

    assert settings.API_DOCS
    assert "ninja" not in settings.INSTALLED_APPS
    assert "ninja" not in _startup_modules(API_DOCS="true")["modules"]
