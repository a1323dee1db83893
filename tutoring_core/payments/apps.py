from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "tutoring_core.payments"
    label = "payments"
    verbose_name = "Payments, credits and the ledger"
