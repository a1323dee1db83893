"""The interactive docs page at /api/v1/docs serves ninja's Swagger UI from this host,
never from a CDN, although "ninja" is not an installed app (config.api.LocalSwagger)."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.test import Client


def test_the_docs_page_loads_its_scripts_and_styles_from_here() -> None:
    page = Client().get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert '"url": "/api/v1/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/ninja/swagger-ui-bundle.js" in assets
    assert "/static/ninja/swagger-ui-init.js" in assets
    assert "/static/ninja/swagger-ui.css" in assets
    assert not [url for url in assets if "//" in url]  # nothing from another host
    assert "cdn" not in html.lower()
    for url in assets:
        assert finders.find(url.removeprefix("/static/")), url  # collectstatic and runserver find them
