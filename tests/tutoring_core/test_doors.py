"""The core's doors hand out values, not tables (issue 13 point 2).

import-linter keeps integrations out of the core's modules, but it cannot see what a
door re-exports: a model class or a QuerySet handed out through ``api.py`` is a table
the caller can query. These walk the public names of both doors."""

from __future__ import annotations

import inspect
import typing
from types import ModuleType

import pytest
from django.db.models import Model, QuerySet

from tutoring_core.accounts import api as accounts
from tutoring_core.calendars import api as calendars
from tutoring_core.classes import api as classes
from tutoring_core.messaging import api as messaging
from tutoring_core.payments import api as payments
from tutoring_core.progress import api as progress
from tutoring_core.scheduling import api as scheduling
from tutoring_core.video import api as video

DOORS = [accounts, calendars, classes, messaging, payments, progress, scheduling, video]
DOOR_IDS = [door.__name__.split(".")[1] for door in DOORS]

# The rows Django's sign-in and the tenant scoping need (ARCHITECTURE.md, "A door").
ROWS_ALLOWED = {"Tenant", "User"}
# Exceptions to the walk: none left. A new door function returning a row fails it.
RETURNS_ROW_FOR_NOW: set[tuple[str, str]] = set()


def _public(door: ModuleType) -> list[tuple[str, object]]:
    return [(name, getattr(door, name)) for name in door.__all__]


def _models_in(annotation: object) -> set[type]:
    """The model and QuerySet classes an annotation names, however nested."""
    origin = typing.get_origin(annotation) or annotation
    found: set[type] = set()
    if inspect.isclass(origin) and issubclass(origin, (Model, QuerySet)):
        found.add(origin)
    for argument in typing.get_args(annotation):
        found |= _models_in(argument)
    return found


@pytest.mark.parametrize("door", DOORS, ids=DOOR_IDS)
def test_a_door_exports_no_model_class_but_tenant_and_user(door: ModuleType) -> None:
    exported = {name for name, value in _public(door) if inspect.isclass(value) and issubclass(value, Model)}
    assert exported <= ROWS_ALLOWED


@pytest.mark.parametrize("door", DOORS, ids=DOOR_IDS)
def test_a_door_returns_no_queryset_and_no_row_but_tenant_and_user(door: ModuleType) -> None:
    app = door.__name__.split(".")[1]
    leaks = {}
    for name, value in _public(door):
        if not inspect.isfunction(value) or (app, name) in RETURNS_ROW_FOR_NOW:
            continue
        returned = _models_in(typing.get_type_hints(value).get("return"))
        returned = {t for t in returned if t.__name__ not in ROWS_ALLOWED}
        if returned:
            leaks[name] = sorted(t.__name__ for t in returned)
    assert leaks == {}


def test_the_walk_sees_a_queryset_and_a_row() -> None:
    """The check itself: it finds what it is there to find."""
    from tutoring_core.classes.models import Class, Enrollment

    def members() -> QuerySet[Enrollment]:
        raise NotImplementedError

    def find() -> tuple[Class | None, bool]:
        raise NotImplementedError

    names = {"Class": Class, "Enrollment": Enrollment}
    assert _models_in(typing.get_type_hints(members, localns=names)["return"]) == {QuerySet}
    assert _models_in(typing.get_type_hints(find, localns=names)["return"]) == {Class}


def test_each_exception_still_returns_a_row() -> None:
    """An exception whose function now hands out a value leaves the list (it only shrinks)."""
    doors = dict(zip(DOOR_IDS, DOORS, strict=True))
    stale = set()
    for app, name in RETURNS_ROW_FOR_NOW:
        function = getattr(doors[app], name)
        if not _models_in(typing.get_type_hints(function).get("return")):
            stale.add((app, name))
    assert stale == set()
