from __future__ import annotations

from django.urls import path

from tutoring_core.scheduling import views

app_name = "scheduling"
urlpatterns = [
    path("classes/<uuid:class_id>/book/", views.class_booking, name="class_booking"),
    path("classes/<uuid:class_id>/book/hold/", views.class_booking_hold, name="class_booking_hold"),
    path("classes/<uuid:class_id>/tutors/<uuid:tutor_id>/", views.class_booking, name="tutor_booking"),
    path(
        "classes/<uuid:class_id>/tutors/<uuid:tutor_id>/hold/",
        views.class_booking_hold,
        name="tutor_booking_hold",
    ),
    path("bookings/<uuid:booking_id>/confirm/", views.booking_confirm, name="booking_confirm"),
    path("bookings/<uuid:booking_id>/cancel/", views.booking_cancel, name="booking_cancel"),
    path("bookings/<uuid:booking_id>/reschedule/", views.booking_reschedule, name="booking_reschedule"),
    path("bookings/<uuid:booking_id>/outcome/", views.booking_outcome, name="booking_outcome"),
    path("sessions/", views.my_sessions, name="my_sessions"),
    path("week/", views.my_week, name="my_week"),
    path("availability/", views.my_availability, name="my_availability"),
    path("tutors/", views.tutor_list, name="tutor_list"),
    path("tutors/<uuid:tutor_id>/", views.tutor_profile, name="tutor_profile"),
    path("tutors/<uuid:tutor_id>/week/", views.tutor_week, name="tutor_week"),
    path("tutors/<uuid:tutor_id>/availability/", views.tutor_availability, name="tutor_availability"),
]
