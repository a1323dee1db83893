from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "tutoring_core.web"
    label = "web"
    verbose_name = "Web pages"
