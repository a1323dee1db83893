from django.apps import AppConfig


class OneRosterConfig(AppConfig):
    name = "oneroster"
    verbose_name = "Roster sync (OneRoster, Google Classroom)"
    default_auto_field = "django.db.models.BigAutoField"
