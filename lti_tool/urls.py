from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "lti_tool"
urlpatterns: list[URLPattern | URLResolver] = []
