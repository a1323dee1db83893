"""Reads of the scorm app shared by views, services and the player."""

from __future__ import annotations

import uuid

from django.http import Http404

from scorm.data import PackageInfo, ScoInfo
from scorm.models import ScormPackage, ScormSco


def sco_info(sco: ScormSco) -> ScoInfo:
    return ScoInfo(
        id=sco.id,
        identifier=sco.identifier,
        title=sco.title,
        href=sco.href,
        parameters=sco.parameters,
        scorm_type=sco.scorm_type,
        mastery_score=sco.mastery_score,
        prerequisites=sco.prerequisites,
        data_from_lms=sco.data_from_lms,
        time_limit_action=sco.time_limit_action,
        max_time_allowed=sco.max_time_allowed,
        sequencing=sco.sequencing,
        order=sco.order,
    )


def package_info(package: ScormPackage, *, created: bool = False) -> PackageInfo:
    return PackageInfo(
        id=package.id,
        tenant_id=package.tenant_id,
        title=package.title,
        version=package.version,
        identifier=package.identifier,
        content_hash=package.content_hash,
        storage_root=package.storage_root,
        size_bytes=package.size_bytes,
        file_count=package.file_count,
        created_at=package.created_at,
        uploaded_by_id=package.uploaded_by_id,
        scos=tuple(sco_info(sco) for sco in package.scos.order_by("order")),
        created=created,
    )


def packages_for_tenant(*, tenant_id: uuid.UUID) -> list[ScormPackage]:
    return list(ScormPackage.objects.for_tenant(tenant_id).order_by("-created_at", "id"))


def package_get_for_tenant(*, tenant_id: uuid.UUID, package_id: uuid.UUID) -> ScormPackage:
    """The tenant's package, or Http404 (another tenant's id looks like nothing)."""
    package = ScormPackage.objects.filter(tenant_id=tenant_id, pk=package_id).first()
    if package is None:
        raise Http404("No such SCORM package.")
    return package
