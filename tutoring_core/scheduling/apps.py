from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "tutoring_core.scheduling"
    label = "scheduling"
    verbose_name = "Tutoring sessions and scheduling"
