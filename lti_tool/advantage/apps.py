from django.apps import AppConfig


class LtiAdvantageConfig(AppConfig):
    name = "lti_tool.advantage"
    label = "lti_advantage"
    verbose_name = "LTI Advantage services (grades, class lists)"

    def ready(self) -> None:
        from lti_tool.advantage.models import AGS_DESTINATION
        from lti_tool.advantage.tasks import enqueue_deliveries
        from tutoring_core.progress.api import outbox_register_notifier

        # New AGS outbox entries are enqueued after their transaction commits.
        outbox_register_notifier(kind=AGS_DESTINATION, notify=enqueue_deliveries)
