from __future__ import annotations

from django.apps import AppConfig


class VideoConfig(AppConfig):
    name = "tutoring_core.video"
    label = "video"
    verbose_name = "Video rooms"
    default_auto_field = "django.db.models.BigAutoField"
