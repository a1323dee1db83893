from __future__ import annotations

from django.urls import path

from tutoring_core.calendars import views

app_name = "calendars"
urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("<str:feed_token>.ics", views.feed, name="feed"),
]
