"""The player's app-origin URLs (included by scorm.urls)."""

from __future__ import annotations

from django.urls import path

from scorm import player_views

urlpatterns = [
    path("classes/<uuid:class_id>/packages/<uuid:package_id>/play/", player_views.play, name="play"),
    path("classes/<uuid:class_id>/attempts/", player_views.class_attempts, name="class_attempts"),
    path("runtime/commit", player_views.commit, name="commit"),
]
