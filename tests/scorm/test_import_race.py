"""The same zip imported at the same moment: one package per tenant, files stored
once and whole (threads on their own connections; SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from scorm.models import ScormPackage, ScormSco
from scorm.services import package_import
from tests.factories import TenantFactory
from tests.scorm.test_import import FIXTURES, files_under

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store(tmp_path: Path, settings: Any) -> Path:
    root = tmp_path / "scorm-store"
    settings.STORAGES = {
        **settings.STORAGES,
        "scorm": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


def test_racing_imports_of_one_zip(store: Path) -> None:
    north, south = TenantFactory(slug="north"), TenantFactory(slug="south")
    data = (FIXTURES / "RuntimeBasicCalls_SCORM12.zip").read_bytes()
    tenants = [north, north, north, south, south]
    barrier = threading.Barrier(len(tenants))
    results: list[Any] = [None] * len(tenants)

    def attempt(index: int) -> None:
        try:
            barrier.wait()
            results[index] = package_import(
                tenant_id=tenants[index].pk, actor_id=None, fileobj=io.BytesIO(data), filename="golf.zip"
            )
        except Exception as exc:  # reported below, with the others
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(tenants))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [type(r).__name__ for r in results] == ["PackageInfo"] * 5, results
    by_tenant = {
        tenant.pk: {r.id for r, t in zip(results, tenants, strict=True) if t == tenant}
        for tenant in (north, south)
    }
    assert {k: len(v) for k, v in by_tenant.items()} == {north.pk: 1, south.pk: 1}
    assert sorted(r.created for r in results) == [False, False, False, True, True]
    assert ScormPackage.objects.count() == 2
    assert ScormSco.objects.count() == 2
    digest = hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        expected = {f"scorm/{digest}/{i.filename}": zf.read(i) for i in zf.infolist() if not i.is_dir()}
    stored = [p for p in files_under(store) if not p.startswith("scorm/_complete/")]
    assert stored == sorted(expected)
    assert all((store / name).read_bytes() == body for name, body in expected.items())
