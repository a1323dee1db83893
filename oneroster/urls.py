from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from oneroster import views

app_name = "oneroster"
urlpatterns: list[URLPattern | URLResolver] = [
    path("connections/<uuid:connection_id>/test", views.connection_test_view, name="connection_test"),
    path("connections/<uuid:connection_id>/upload", views.connection_upload_view, name="connection_upload"),
    path("connections/<uuid:connection_id>/run", views.connection_run_view, name="connection_run"),
    path("runs/<uuid:run_id>/", views.run_detail_view, name="run_detail"),
    path("runs/<uuid:run_id>/progress", views.run_progress_view, name="run_progress"),
    path("runs/<uuid:run_id>/approve", views.run_approve_view, name="run_approve"),
    path("runs/<uuid:run_id>/reject", views.run_reject_view, name="run_reject"),
]
