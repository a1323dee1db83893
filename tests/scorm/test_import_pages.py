"""The teacher's import pages and the admin import: who may use them, an upload
that imports, one that is rejected (400, the reason, nothing written)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from scorm.models import ScormPackage
from tests.conftest import Personas
from tests.factories import TenantFactory, UserFactory, district_admin
from tests.scorm import hostile_zips as hz
from tests.scorm.isolation import make_package
from tests.scorm.test_import import FIXTURES, files_under

pytestmark = pytest.mark.django_db


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


def _upload(data: bytes, name: str = "course.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def test_teacher_imports_a_package_and_sees_it(client: Any, personas: Personas, store: Path) -> None:
    client.force_login(personas.owner)
    data = (FIXTURES / "RuntimeBasicCalls_SCORM12.zip").read_bytes()
    response = client.post(reverse("scorm:package_list"), {"package": _upload(data)})
    package = ScormPackage.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("scorm:package_detail", kwargs={"package_id": package.pk})
    assert (package.tenant_id, package.uploaded_by_id) == (personas.tenant.pk, personas.owner.pk)
    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "Imported “Golf Explained - Run-time Basic Calls” (SCORM 1.2)." in text
    assert "<code>shared/launchpage.html</code>" in text
    listing = client.get(reverse("scorm:package_list")).content.decode()
    assert "Golf Explained - Run-time Basic Calls" in listing


def test_same_upload_again_changes_nothing(client: Any, personas: Personas, store: Path) -> None:
    client.force_login(personas.owner)
    data = hz.valid("Twice")
    client.post(reverse("scorm:package_list"), {"package": _upload(data)})
    response = client.post(reverse("scorm:package_list"), {"package": _upload(data)}, follow=True)
    assert ScormPackage.objects.count() == 1
    assert "“Twice” was imported before; nothing changed." in response.content.decode()


def test_rejected_upload_says_why_and_writes_nothing(client: Any, personas: Personas, store: Path) -> None:
    client.force_login(personas.owner)
    response = client.post(
        reverse("scorm:package_list"), {"package": _upload(hz.with_entry("../../evil.js"))}
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert re.search(
        r'role="alert">This package cannot be imported. An entry&#x27;s name climbs out of the package with '
        r"&#x27;..&#x27;: &#x27;../../evil.js&#x27;</p>",
        text,
    )
    assert 'aria-invalid="true"' in text
    assert (ScormPackage.objects.count(), files_under(store)) == (0, [])


def test_cmi5_upload_is_refused_plainly(client: Any, personas: Personas, store: Path) -> None:
    client.force_login(personas.owner)
    data = (FIXTURES / "single_au_basic_responsive.zip").read_bytes()
    response = client.post(reverse("scorm:package_list"), {"package": _upload(data)})
    assert response.status_code == 400
    assert "cmi5 packages are not supported yet" in response.content.decode()


def test_missing_file_is_a_400(client: Any, personas: Personas, store: Path) -> None:
    client.force_login(personas.owner)
    response = client.post(reverse("scorm:package_list"), {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_personas(client: Any, personas: Personas) -> None:
    package = make_package(personas.tenant)
    detail = reverse("scorm:package_detail", kwargs={"package_id": package.pk})
    client.force_login(personas.owner)
    assert client.get(detail).status_code == 200
    client.force_login(personas.same_tenant_other)  # no teaching role
    assert client.get(detail).status_code == 403
    assert client.get(reverse("scorm:package_list")).status_code == 403
    client.force_login(personas.other_tenant)  # a district admin elsewhere
    assert client.get(detail).status_code == 404
    listing = client.get(reverse("scorm:package_list"))
    assert listing.status_code == 200
    assert package.title not in listing.content.decode()
    client.logout()
    assert client.get(detail).status_code == 302


def test_admin_import_for_a_district_admin(client: Any, store: Path) -> None:
    tenant = TenantFactory(slug="north")
    admin_user = district_admin(tenant)
    client.force_login(admin_user)
    add = reverse("admin:scorm_scormpackage_add")
    page = client.get(add)
    assert page.status_code == 200
    assert 'name="tenant"' not in page.content.decode()
    data = (FIXTURES / "PrerequisitesTest_SCORM12.zip").read_bytes()
    response = client.post(add, {"package": _upload(data)})
    assert response.status_code == 302
    package = ScormPackage.objects.get()
    assert (package.tenant_id, package.title, package.scos.count()) == (
        tenant.pk,
        "Prerequisites Test Course",
        4,
    )
    change = client.get(reverse("admin:scorm_scormpackage_change", args=[package.pk]))
    assert change.status_code == 200
    assert "module4.html" in change.content.decode()


def test_admin_rejection_is_a_form_error(client: Any, store: Path) -> None:
    tenant = TenantFactory(slug="north")
    client.force_login(district_admin(tenant))
    response = client.post(
        reverse("admin:scorm_scormpackage_add"), {"package": _upload(hz.symlink("x/passwd"))}
    )
    assert response.status_code == 200
    assert "This package cannot be imported. An entry is a symbolic link: &#x27;x/passwd&#x27;" in (
        response.content.decode()
    )
    assert (ScormPackage.objects.count(), files_under(store)) == (0, [])


def test_platform_staff_chooses_the_tenant(client: Any, store: Path) -> None:
    tenant = TenantFactory(slug="north")
    staff = UserFactory(tenant=None, is_staff=True, is_superuser=True)
    client.force_login(staff)
    add = reverse("admin:scorm_scormpackage_add")
    missing = client.post(add, {"package": _upload(hz.valid())})
    assert "This field is required." in missing.content.decode()
    response = client.post(add, {"tenant": str(tenant.pk), "package": _upload(hz.valid("Staff"))})
    assert response.status_code == 302
    assert ScormPackage.objects.get().tenant_id == tenant.pk


def test_a_file_past_the_limit_is_dropped_while_it_arrives(
    client: Any, personas: Personas, store: Path, settings: Any
) -> None:
    settings.SCORM_MAX_PACKAGE_MB = 1
    client.force_login(personas.owner)
    data = hz.with_entry("media/clip.bin", hz.noise(3 * 1024 * 1024))
    response = client.post(reverse("scorm:package_list"), {"package": _upload(data)})
    assert response.status_code == 400
    assert "The file is larger than the 1 MB limit for one package." in response.content.decode()
    assert (ScormPackage.objects.count(), files_under(store)) == (0, [])


def test_the_upload_needs_the_csrf_token(personas: Personas, store: Path) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.owner)
    response = client.post(reverse("scorm:package_list"), {"package": _upload(hz.valid())})
    assert response.status_code == 403
    assert ScormPackage.objects.count() == 0
