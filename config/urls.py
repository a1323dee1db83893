from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config.api import api
from tutoring_core.web import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("lti/advantage/", include("lti_tool.advantage.urls")),
    path("lti/", include("lti_tool.urls")),
    path("oneroster/", include("oneroster.urls")),
    path("scheduling/", include("tutoring_core.scheduling.urls")),
    path("calendar/", include("tutoring_core.calendars.urls")),
    path("scorm/", include("scorm.urls")),
    path("video/", include("tutoring_core.video.urls")),
    path("payments/", include("tutoring_core.payments.urls")),
    path("sso/", include("sso.urls")),
    path("", include("tutoring_core.web.urls")),
]
