from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from lti_tool import simulator, views

app_name = "lti_tool"
urlpatterns: list[URLPattern | URLResolver] = [
    path("jwks.json", views.jwks, name="jwks"),
    path("login/", views.login, name="login"),
    path("launch/", views.launch, name="launch"),
    path("launch/storage/", views.launch_storage, name="launch_storage"),
    path("session-check/", views.session_check, name="session_check"),
    path("deep-link/<uuid:session_id>/", views.deep_link, name="deep_link"),
    path("canvas.json", views.canvas_config, name="canvas_config"),
    path("register/<str:token>/", views.dynamic_registration, name="dynamic_registration"),
    # The launch simulator: a pretend LMS, only in demo mode (404 otherwise).
    path("demo/", simulator.course, name="simulator"),
    path("demo/platform/auth/", simulator.auth, name="simulator_auth"),
    path("demo/platform/jwks.json", simulator.jwks, name="simulator_jwks"),
    path("demo/platform/token/", simulator.token, name="simulator_token"),
    path("demo/platform/deep-link-return/", simulator.deep_link_return, name="simulator_deep_link_return"),
]
