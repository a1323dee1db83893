"""Writes of the scorm app: importing a package."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from typing import IO

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from scorm.data import PackageInfo
from scorm.errors import PackageRejected
from scorm.models import ScormPackage, ScormSco
from scorm.protocol.extract import MIB, Limits, PackageArchive, open_package
from scorm.protocol.manifest import ParsedPackage, identify_package, parse_manifest
from scorm.selectors import package_info
from scorm.storage import ChunkReader, is_stored, package_root, package_storage, write_exact, write_marker
from tutoring_core.accounts import api as accounts
from tutoring_core.accounts.api import Tenant, User, audit_record

logger = logging.getLogger(__name__)


def import_limits() -> Limits:
    return Limits(
        max_package_bytes=settings.SCORM_MAX_PACKAGE_MB * MIB,
        max_total_bytes=settings.SCORM_MAX_UNPACKED_MB * MIB,
        max_entries=settings.SCORM_MAX_ENTRIES,
        max_ratio=settings.SCORM_MAX_RATIO,
        max_manifest_bytes=settings.SCORM_MAX_MANIFEST_MB * MIB,
    )


def _hash_and_size(fileobj: IO[bytes], limits: Limits) -> tuple[str, int]:
    fileobj.seek(0, 2)
    size = fileobj.tell()
    if size > limits.max_package_bytes:
        raise PackageRejected(
            "package_too_large",
            f"The package is {size // MIB} MB; at most {limits.max_package_bytes // MIB} MB can be imported.",
        )
    fileobj.seek(0)
    digest = hashlib.sha256()
    while chunk := fileobj.read(MIB):
        digest.update(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def _check_launch_files(archive: PackageArchive, parsed: ParsedPackage) -> None:
    for sco in parsed.scos:
        if archive.get(sco.href) is not None:
            continue
        near = archive.get_folded(sco.href)
        hint = f" (the zip has {near.path!r}; names are case-sensitive on the web)" if near else ""
        raise PackageRejected(
            "launch_file_missing",
            f"Item {sco.identifier!r} launches {sco.href!r}, which is not in the zip{hint}.",
            entry=sco.href,
        )


# Writers of one content hash take turns (the same zip uploaded twice at once, by one
# tenant or two): otherwise one may delete a file the other is still finishing. The
# lock is a cache key (Redis in production, the database cache otherwise), added
# atomically; it expires on its own if its holder dies.
_LOCK_TTL_SECONDS = 900
_LOCK_WAIT_SECONDS = 120


@contextlib.contextmanager
def _store_lock(content_hash: str) -> Iterator[None]:
    key = f"scorm:store:{content_hash}"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while not cache.add(key, token, timeout=_LOCK_TTL_SECONDS):
        if is_stored(content_hash) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    else:
        try:
            yield
        finally:
            if cache.get(key) == token:
                cache.delete(key)
        return
    if not is_stored(content_hash):
        raise PackageRejected(
            "busy", "The same package is being imported right now; try again in a few minutes."
        )
    yield


def _store_files(archive: PackageArchive, content_hash: str) -> None:
    """Writes every entry under scorm/<hash>/ unless a complete copy is there already.
    On any failure the files written by this call are removed again, so a rejected
    package leaves nothing behind."""
    if is_stored(content_hash):
        return
    with _store_lock(content_hash):
        if is_stored(content_hash):
            return
        _write_files(archive, content_hash)


def _write_files(archive: PackageArchive, content_hash: str) -> None:
    storage = package_storage()
    root = package_root(content_hash)
    written: list[str] = []
    try:
        for entry in archive.entries:
            name = root + entry.path
            written.append(name)  # before writing: a storage may leave a partial file
            write_exact(storage, name, ChunkReader(archive.iter_chunks(entry), entry.size), entry.size)
        write_marker(content_hash, {entry.path: entry.size for entry in archive.entries})
    except BaseException:
        for name in written:
            try:
                storage.delete(name)  # deleting a missing name is not an error (Storage.delete)
            except Exception:  # best effort; the original error matters more
                logger.exception("scorm: could not remove %s after a failed import", name)
        raise


def _rows_create(
    *,
    tenant: Tenant,
    actor: User | None,
    parsed: ParsedPackage,
    content_hash: str,
    size: int,
    file_count: int,
) -> tuple[ScormPackage, bool]:
    try:
        with transaction.atomic():
            package = ScormPackage.objects.create(
                tenant=tenant,
                title=parsed.title,
                version=parsed.version,
                identifier=parsed.identifier,
                content_hash=content_hash,
                storage_root=package_root(content_hash),
                size_bytes=size,
                file_count=file_count,
                manifest=parsed.manifest,
                uploaded_by=actor,
            )
            ScormSco.objects.bulk_create(
                [
                    ScormSco(
                        package=package,
                        identifier=sco.identifier[:500],
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
                    for sco in parsed.scos
                ]
            )
            audit_record(
                tenant=tenant,
                actor=actor,
                action="scorm.package_import",
                target=package,
                details={"content_hash": content_hash, "version": parsed.version, "scos": len(parsed.scos)},
            )
    except IntegrityError:
        # The same zip imported twice at once for this tenant: the other call won.
        existing = ScormPackage.objects.filter(tenant=tenant, content_hash=content_hash).first()
        if existing is None:
            raise
        return existing, False
    return package, True


def _actor(tenant: Tenant, actor_id: uuid.UUID | None) -> User | None:
    if actor_id is None:
        return None
    try:
        return accounts.user_get(tenant=tenant, user_id=actor_id)
    except accounts.User.DoesNotExist:
        raise PackageRejected("actor", "The person importing is not a member of this tenant.") from None


def package_import(
    *, tenant_id: uuid.UUID, actor_id: uuid.UUID | None, fileobj: IO[bytes], filename: str
) -> PackageInfo:
    """Imports a SCORM package zip (a seekable file) into a tenant.

    Every check runs before anything is written: the zip's records, the manifest,
    the launch files. Then the files are stored once per content hash (another
    tenant's import of the same zip is reused) and the rows are created. Importing
    the same zip again into the same tenant returns the package it already has
    (``created=False``). Raises PackageRejected with a reason naming the offending
    entry; a rejected package writes nothing (no rows, no files).
    """
    tenant = accounts.tenant_by_id(tenant_id)
    if tenant is None:
        raise PackageRejected("tenant", "The district to import into does not exist or is not active.")
    actor = _actor(tenant, actor_id)
    limits = import_limits()
    content_hash, size = _hash_and_size(fileobj, limits)
    with open_package(fileobj, limits, size=size) as archive:
        manifest_name = identify_package([entry.path for entry in archive.entries])
        manifest_entry = archive.get(manifest_name)
        assert manifest_entry is not None  # identify_package found it
        parsed = parse_manifest(archive.read(manifest_entry, limits.max_manifest_bytes))
        _check_launch_files(archive, parsed)
        existing = ScormPackage.objects.filter(tenant=tenant, content_hash=content_hash).first()
        if existing is not None:
            return package_info(existing, created=False)
        _store_files(archive, content_hash)
        file_count = len(archive.entries)
    package, created = _rows_create(
        tenant=tenant, actor=actor, parsed=parsed, content_hash=content_hash, size=size, file_count=file_count
    )
    logger.info("scorm: imported %s (%s) for tenant %s as %s", filename, content_hash, tenant.pk, package.pk)
    return package_info(package, created=created)
