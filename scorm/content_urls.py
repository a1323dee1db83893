"""The content origin's URLs (scorm.content.ContentOriginMiddleware resolves these,
and only these, for the content host)."""

from __future__ import annotations

from django.urls import path

from scorm import content, player_views

urlpatterns = [
    path("p/<str:token>/", player_views.player_wrapper, name="scorm_content_player"),
    path("c/<str:token>/<path:path>", content.package_file, name="scorm_content_file"),
    path("runtime/<str:name>", content.runtime_file, name="scorm_content_runtime"),
]
