from django.apps import AppConfig


class ProgressConfig(AppConfig):
    name = "tutoring_core.progress"
    label = "progress"
    verbose_name = "Progress and results"
