from django.apps import AppConfig


class TestAppConfig(AppConfig):
    """Models that exist only for tests of shared machinery (encrypted fields)."""

    name = "tests.testapp"
    label = "testapp"
