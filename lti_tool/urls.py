from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from lti_tool import views

app_name = "lti_tool"
urlpatterns: list[URLPattern | URLResolver] = [
    path("jwks.json", views.jwks, name="jwks"),
    path("login/", views.login, name="login"),
    path("launch/", views.launch, name="launch"),
    path("launch/storage/", views.launch_storage, name="launch_storage"),
    path("deep-link/<uuid:session_id>/", views.deep_link, name="deep_link"),
    path("canvas.json", views.canvas_config, name="canvas_config"),
]
