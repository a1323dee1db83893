from __future__ import annotations

from django.urls import path

from tutoring_core.video import views

app_name = "video"
urlpatterns = [
    path("sessions/<uuid:video_session_id>/", views.room, name="room"),
    path("sessions/<uuid:video_session_id>/token/", views.token, name="token"),
    path("sessions/<uuid:video_session_id>/attendance/", views.attendance, name="attendance"),
    path("sessions/<uuid:video_session_id>/join/", views.join, name="join"),
    path("sessions/<uuid:video_session_id>/status/", views.status, name="status"),
    path("sessions/<uuid:video_session_id>/end/", views.end, name="end"),
    path("sessions/<uuid:video_session_id>/recording/", views.recording, name="recording"),
    path(
        "hooks/bbb/<uuid:tenant_id>/recording-ready/", views.bbb_recording_ready, name="bbb_recording_ready"
    ),
    path("hooks/bbb/<uuid:tenant_id>/events/", views.bbb_events, name="bbb_events"),
    path("hooks/livekit/<uuid:tenant_id>/", views.livekit_webhook, name="livekit_webhook"),
]
