from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from scorm import player_urls, views

app_name = "scorm"
urlpatterns: list[URLPattern | URLResolver] = [
    # Teacher's import pages (scormimport).
    path("packages/", views.package_list, name="package_list"),
    path("packages/<uuid:package_id>/", views.package_detail, name="package_detail"),
    # The player (scormplay): scorm/player_urls.py.
    *player_urls.urlpatterns,
]
