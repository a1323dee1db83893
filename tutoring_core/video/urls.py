from __future__ import annotations

from django.urls import path

from tutoring_core.video import views

app_name = "video"
urlpatterns = [
    path("sessions/<uuid:video_session_id>/", views.room, name="room"),
    path("sessions/<uuid:video_session_id>/token/", views.token, name="token"),
    path("sessions/<uuid:video_session_id>/attendance/", views.attendance, name="attendance"),
]
