from django.apps import AppConfig


class ClassesConfig(AppConfig):
    name = "tutoring_core.classes"
    label = "classes"
    verbose_name = "Schools, terms, classes and enrollments"
