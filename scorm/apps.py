from django.apps import AppConfig


class ScormConfig(AppConfig):
    name = "scorm"
    verbose_name = "SCORM content"

    def ready(self) -> None:
        # The tenant's packages become deep-linking choices (lti_tool lists them
        # through progress.api, never importing scorm).
        from scorm import checks, placements  # noqa: F401 (checks registers itself)

        placements.register()
