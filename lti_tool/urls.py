from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from lti_tool import views

app_name = "lti_tool"
urlpatterns: list[URLPattern | URLResolver] = [
    path("jwks.json", views.jwks, name="jwks"),
]
