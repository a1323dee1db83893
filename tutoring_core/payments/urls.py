from __future__ import annotations

from django.urls import path

from tutoring_core.payments import views

app_name = "payments"

urlpatterns = [
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
    path("", views.payer_list, name="payers"),
    path("accounts/<uuid:payer_id>/", views.statement, name="statement"),
    path("accounts/<uuid:payer_id>/buy/", views.buy, name="buy"),
    path("accounts/<uuid:payer_id>/card/", views.card, name="card"),
    path("purchases/<uuid:purchase_id>/pay/", views.pay, name="pay"),
    path("purchases/<uuid:purchase_id>/pay/confirm/", views.pay_confirm, name="pay_confirm"),
    path("purchases/<uuid:purchase_id>/pay/done/", views.pay_done, name="pay_done"),
    path("purchases/<uuid:purchase_id>/document.pdf", views.document, name="document"),
    path("pay/", views.my_pay, name="my_pay"),
    path("payruns/", views.payruns, name="payruns"),
    path("payruns/<uuid:payrun_id>/", views.payrun, name="payrun"),
    path(
        "payruns/<uuid:payrun_id>/tutors/<uuid:tutor_id>/statement.pdf",
        views.payrun_statement,
        name="payrun_statement",
    ),
]
