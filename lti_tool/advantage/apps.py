from django.apps import AppConfig


class LtiAdvantageConfig(AppConfig):
    name = "lti_tool.advantage"
    label = "lti_advantage"
    verbose_name = "LTI Advantage services (grades, class lists)"
