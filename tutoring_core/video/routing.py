from __future__ import annotations

from django.conf import settings
from django.urls import path

from tutoring_core.video import consumers

websocket_urlpatterns = [
    path("ws/video/rooms/<uuid:room_id>/", consumers.RoomConsumer.as_asgi()),
]
if settings.DEBUG or getattr(settings, "VIDEO_ECHO_ENDPOINT", False):
    websocket_urlpatterns.append(path("ws/video/echo/", consumers.EchoConsumer.as_asgi()))
