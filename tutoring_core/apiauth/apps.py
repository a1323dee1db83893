from django.apps import AppConfig


class ApiauthConfig(AppConfig):
    name = "tutoring_core.apiauth"
    label = "apiauth"
    verbose_name = "JSON API access"
