from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from tutoring_core.web import signin, views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("signin/", views.SignInView.as_view(), name="login"),
    path("signin/district/", views.district_sign_in, name="district_sign_in"),
    path("signin/set-password/<uidb64>/<token>/", signin.SetPasswordView.as_view(), name="set_password"),
    path("signout/", auth_views.LogoutView.as_view(), name="logout"),
    path("classes/<uuid:class_id>/", views.class_detail, name="class_detail"),
]
