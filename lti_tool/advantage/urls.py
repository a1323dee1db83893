from __future__ import annotations

from django.urls import path

from lti_tool.advantage import views

app_name = "lti_advantage"
urlpatterns = [
    path("classes/<uuid:class_id>/grades/", views.class_grades, name="class_grades"),
    path("classes/<uuid:class_id>/grades/setup/", views.class_grades_setup, name="class_grades_setup"),
    path("classes/<uuid:class_id>/roster/sync/", views.class_roster_sync, name="class_roster_sync"),
]
