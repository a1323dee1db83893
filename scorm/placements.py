"""The tenant's SCORM packages as things an LMS can place in a class (deep linking),
offered through progress.api.placeable_register (scorm.apps registers them): a
placed package opens the player, and a gradable placement's column gets the
results the player records under the package's activity key in that class."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.urls import reverse

from scorm.models import ScormPackage
from scorm.player_services import activity_key
from tutoring_core.progress import api as progress

PREFIX = "scorm"
KIND = "SCORM course"


def _placeable(package: ScormPackage, class_id: uuid.UUID) -> progress.Placeable:
    return progress.Placeable(
        key=f"{PREFIX}:{package.pk}",
        title=package.title[:255],
        kind=KIND,
        path=reverse("scorm:play", kwargs={"class_id": class_id, "package_id": package.pk}),
        gradable=True,
        activity_key=activity_key(class_id=class_id, package_id=package.pk),
    )


def placeables_for_class(tenant_id: uuid.UUID, class_id: uuid.UUID) -> Iterable[progress.Placeable]:
    packages = (
        ScormPackage.objects.filter(tenant_id=tenant_id, scos__isnull=False)
        .distinct()
        .order_by("title", "id")
    )
    return [_placeable(package, class_id) for package in packages]


def placeable_find(tenant_id: uuid.UUID, class_id: uuid.UUID, ref: str) -> progress.Placeable | None:
    try:
        package_id = uuid.UUID(ref)
    except ValueError:
        return None
    package = ScormPackage.objects.filter(tenant_id=tenant_id, pk=package_id).first()
    return None if package is None else _placeable(package, class_id)


def register() -> None:
    progress.placeable_register(prefix=PREFIX, list_for_class=placeables_for_class, find=placeable_find)
