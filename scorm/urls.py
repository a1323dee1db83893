from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "scorm"
urlpatterns: list[URLPattern | URLResolver] = []
