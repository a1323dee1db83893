from django.apps import AppConfig


class CalendarsConfig(AppConfig):
    name = "tutoring_core.calendars"
    label = "calendars"
    verbose_name = "Calendar feeds and CalDAV"
