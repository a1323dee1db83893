from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tutoring_core.accounts"
    label = "accounts"
    verbose_name = "Tenants, people and access"
