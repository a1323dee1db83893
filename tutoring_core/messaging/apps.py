from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "tutoring_core.messaging"
    label = "messaging"
    verbose_name = "Notifications and reminders"
