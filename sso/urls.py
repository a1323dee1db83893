from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from sso import views

app_name = "sso"
urlpatterns: list[URLPattern | URLResolver] = [
    path("<slug:tenant_slug>/", views.sign_in_page, name="sign_in"),
    path("<slug:tenant_slug>/saml/metadata/", views.saml_metadata, name="saml_metadata"),
    path("<slug:tenant_slug>/saml/<uuid:provider_id>/login/", views.saml_login, name="saml_login"),
    path("<slug:tenant_slug>/saml/acs/", views.saml_acs, name="saml_acs"),
    path("<slug:tenant_slug>/saml/finish/", views.saml_finish, name="saml_finish"),
    path("<slug:tenant_slug>/saml/logout/", views.saml_logout, name="saml_logout"),
    path("<slug:tenant_slug>/saml/sls/", views.saml_sls, name="saml_sls"),
    path("<slug:tenant_slug>/oidc/<uuid:provider_id>/login/", views.oidc_login, name="oidc_login"),
    path("<slug:tenant_slug>/oidc/callback/", views.oidc_callback, name="oidc_callback"),
]
