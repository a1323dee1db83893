"""package_import, the scorm_import command: fixtures, storage once per content hash,
hostile packages rejected whole with nothing written."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scorm.errors import PackageRejected
from scorm.models import ScormPackage, ScormSco
from scorm.services import package_import
from tests.factories import TenantFactory, UserFactory
from tests.scorm import hostile_zips as hz
from tutoring_core.accounts.models import AuditLog, Tenant

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "scorm"

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:Duplicate name")]


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


def files_under(root: Path) -> list[str]:
    return (
        sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
        if root.exists()
        else []
    )


def _import(tenant: Tenant, data: bytes, actor_id: Any = None) -> Any:
    return package_import(
        tenant_id=tenant.pk, actor_id=actor_id, fileobj=io.BytesIO(data), filename="course.zip"
    )


ACCEPTED = {
    "ContentPackagingSingleSCO_SCORM20042ndEdition.zip": (
        "2004 2nd Edition",
        "Golf Explained - CP Single SCO",
        1,
        79,
    ),
    "PrerequisitesTest_SCORM12.zip": ("1.2", "Prerequisites Test Course", 4, 5),
    "RunTimeAdvancedCalls_SCORM20043rdEdition.zip": (
        "2004 3rd Edition",
        "Golf Explained - Run-time Advanced Calls",
        1,
        69,
    ),
    "RuntimeBasicCalls_SCORM12.zip": ("1.2", "Golf Explained - Run-time Basic Calls", 1, 44),
    "RuntimeBasicCalls_SCORM20043rdEdition.zip": (
        "2004 3rd Edition",
        "Golf Explained - Run-time Basic Calls",
        1,
        69,
    ),
    "RuntimeMinimumCalls_SCORM12.zip": ("1.2", "Golf Explained - Minimum Run-time Calls", 18, 44),
    "SequencingPostTestRollup4thEd_SCORM20044thEdition.zip": (
        "2004 4th Edition",
        "Golf Explained - 4th Edition Features",
        5,
        59,
    ),
    "SequencingSimpleRemediation_SCORM20043rdEdition.zip": (
        "2004 3rd Edition",
        "Golf Explained - Simple Remediation",
        8,
        69,
    ),
}
REJECTED = {
    "InvalidMissingOrgIdentifier_SCORM20043rdEdition.zip": "An organization titled 'Minimal Course' has no identifier.",
    "ItemWithNonExistentResourceId_SCORM12.zip": (
        "Item 'item_1' points at resource 'non_existent_resource', which the manifest does not define."
    ),
    "MalformedXml_SCORM12.zip": (
        "imsmanifest.xml is not well-formed XML: Opening and ending tag mismatch: item line 24 and organization, "
        "line 27, column 20 (line 27)."
    ),
    "MissingLaunchUrl_SCORM12.zip": "Item 'item_1' (resource 'resource_1') has no launch file: the resource has no href.",
    "multi_au_framed.zip": "cmi5 packages are not supported yet (the zip has 'cmi5.xml', not imsmanifest.xml).",
    "single_au_basic_responsive.zip": "cmi5 packages are not supported yet (the zip has 'cmi5.xml', not imsmanifest.xml).",
}


def test_every_fixture_has_an_expected_outcome() -> None:
    assert sorted(path.name for path in FIXTURES.glob("*.zip")) == sorted([*ACCEPTED, *REJECTED])


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_fixture_imports(name: str, store: Path) -> None:
    tenant = TenantFactory()
    data = (FIXTURES / name).read_bytes()
    info = _import(tenant, data)
    version, title, sco_count, file_count = ACCEPTED[name]
    digest = hashlib.sha256(data).hexdigest()
    assert (info.version, info.title, len(info.scos), info.file_count, info.size_bytes) == (
        version,
        title,
        sco_count,
        file_count,
        len(data),
    )
    assert (info.content_hash, info.storage_root, info.created) == (digest, f"scorm/{digest}/", True)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        expected = sorted(f"scorm/{digest}/{i.filename}" for i in zf.infolist() if not i.is_dir())
        stored = files_under(store)
        assert [path for path in stored if not path.startswith("scorm/_complete/")] == expected
        launch = info.scos[0].href
        assert (store / "scorm" / digest / launch).read_bytes() == zf.read(launch)
    assert ScormSco.objects.filter(package_id=info.id).count() == sco_count


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_fixture_is_rejected_with_its_reason(name: str, store: Path) -> None:
    with pytest.raises(PackageRejected) as caught:
        _import(TenantFactory(), (FIXTURES / name).read_bytes())
    assert caught.value.reason == REJECTED[name]
    assert files_under(store) == []
    assert ScormPackage.objects.count() == 0


def test_prerequisites_and_mastery_reach_the_rows(store: Path) -> None:
    info = _import(TenantFactory(), (FIXTURES / "PrerequisitesTest_SCORM12.zip").read_bytes())
    rows = list(ScormSco.objects.filter(package_id=info.id).order_by("order"))
    assert [(r.identifier, r.href, r.mastery_score, r.prerequisites) for r in rows] == [
        ("module1", "module1.html", Decimal("80.0000"), ""),
        ("module2", "module2.html", None, "module1"),
        ("module3", "module3.html", None, "module1 AND module2"),
        ("module4", "module4.html", Decimal("90.0000"), "(module1 AND module2) OR module3"),
    ]
    assert (rows[1].data_from_lms, rows[2].time_limit_action, rows[0].max_time_allowed) == (
        "custom_data_for_module2",
        "exit,message",
        "02:30:00",
    )


def test_2004_sequencing_kept_and_parameters(store: Path) -> None:
    data = (FIXTURES / "SequencingPostTestRollup4thEd_SCORM20044thEdition.zip").read_bytes()
    info = _import(TenantFactory(), data)
    first = info.scos[0]
    assert (first.identifier, first.launch_path) == ("playing_item", "shared/launchpage.html?content=playing")
    sequencing = first.sequencing
    assert sequencing["collection_ref"] == "content_seq_rules"
    assert sequencing["completionThreshold"] == {"progressWeight": "0.5"}
    assert sequencing["imsss"]["objectives"][0]["primaryObjective"][0]["objectiveID"] == "playing_completed"
    assert "adlseq:objectives" in sequencing["imsss"]
    assert sequencing["adlcp:data"]["adlcp:map"][0]["targetID"] == (
        "com.scorm.golfsamples.sequencing.forcedsequential.notesStorage"
    )
    package = ScormPackage.objects.get(pk=info.id)
    assert package.manifest["default_org"] == "golf_sample_default_org"
    assert "content_seq_rules" in package.manifest["sequencing_collection"]


def test_same_zip_twice_is_one_package_and_other_tenant_reuses_the_files(store: Path) -> None:
    north, south = TenantFactory(), TenantFactory()
    data = (FIXTURES / "RuntimeBasicCalls_SCORM12.zip").read_bytes()
    first = _import(north, data)
    launch = store / first.storage_root / "shared/launchpage.html"
    before = launch.stat()
    again = _import(north, data)
    assert (again.id, again.created) == (first.id, False)
    other = _import(south, data)
    assert other.id != first.id and other.created is True
    after = launch.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not written again
    assert ScormPackage.objects.filter(content_hash=first.content_hash).count() == 2
    assert len([p for p in files_under(store) if p.startswith(first.storage_root)]) == 44


def test_a_half_written_copy_is_written_again(store: Path) -> None:
    data = (FIXTURES / "RuntimeBasicCalls_SCORM12.zip").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    stray = store / "scorm" / digest / "shared" / "launchpage.html"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half")
    info = _import(TenantFactory(), data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert stray.read_bytes() == zf.read("shared/launchpage.html")
    assert len([p for p in files_under(store) if p.startswith(info.storage_root)]) == 44


HOSTILE = [
    ("zip slip ../", lambda: hz.with_entry("../evil.html"), "path_traversal"),
    ("zip slip nested ../", lambda: hz.with_entry("shared/../../evil.html"), "path_traversal"),
    ("absolute path", lambda: hz.with_entry("/tmp/evil.html"), "absolute_path"),
    ("backslash path", lambda: hz.with_entry("..\\..\\evil.html"), "backslash_path"),
    ("drive letter", lambda: hz.with_entry("C:/evil.html"), "drive_path"),
    ("symlink", lambda: hz.symlink("shared/passwd"), "symlink"),
    ("encrypted", lambda: hz.encrypted(), "encrypted"),
    ("duplicate", lambda: hz.build([*hz.valid_entries(), ("index.html", b"2")]), "duplicate_name"),
    ("duplicate case", lambda: hz.build([*hz.valid_entries(), ("Index.HTML", b"2")]), "duplicate_name"),
    ("zip bomb ratio", lambda: hz.ratio_bomb(), "compression_ratio"),
    ("zip bomb nested", lambda: hz.nested_bomb(), "compression_ratio"),
    ("zip nested too deep", lambda: hz.nested_deep(3), "nested_too_deep"),
    ("size liar", lambda: hz.size_liar(), "corrupt_entry"),
    ("external entity", lambda: hz.entity_manifest(hz.XXE), "xml_entities"),
    ("entity expansion bomb", lambda: hz.entity_manifest(hz.BILLION_LAUGHS), "xml_entities"),
    (
        "oversized manifest",
        lambda: hz.build(
            [
                ("imsmanifest.xml", hz.manifest() + b"<!--" + hz.noise(5 * 1024 * 1024) + b"-->"),
                ("index.html", hz.LAUNCH),
            ]
        ),
        "entry_too_large",
    ),
    (
        "launch file missing",
        lambda: hz.build([("imsmanifest.xml", hz.manifest()), ("Index.html", hz.LAUNCH)]),
        "launch_file_missing",
    ),
    ("not a zip", lambda: b"<html>not a zip</html>", "not_a_zip"),
    ("xAPI", lambda: hz.build([("tincan.xml", b"<tincan/>"), ("index.html", b"x")]), "xapi"),
]


@pytest.mark.parametrize(("label", "make", "code"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_package_is_rejected_whole_and_writes_nothing(
    label: str, make: Any, code: str, store: Path
) -> None:
    tenant = TenantFactory()
    audit_before = AuditLog.objects.count()
    with pytest.raises(PackageRejected) as caught:
        _import(tenant, make())
    assert caught.value.code == code
    assert files_under(store) == []
    assert (ScormPackage.objects.count(), ScormSco.objects.count(), AuditLog.objects.count()) == (
        0,
        0,
        audit_before,
    )


def test_size_liar_reason_names_the_entry_and_removes_what_it_wrote(store: Path) -> None:
    with pytest.raises(PackageRejected) as caught:
        _import(TenantFactory(), hz.size_liar())
    assert caught.value.reason == "The entry 'zz-liar.bin' cannot be read: Bad CRC-32 for file 'zz-liar.bin'."
    assert files_under(store) == []


def test_launch_file_missing_reason_hints_at_case(store: Path) -> None:
    with pytest.raises(PackageRejected) as caught:
        _import(TenantFactory(), hz.build([("imsmanifest.xml", hz.manifest()), ("Index.html", hz.LAUNCH)]))
    assert caught.value.reason == (
        "Item 'item_1' launches 'index.html', which is not in the zip (the zip has 'Index.html'; names are "
        "case-sensitive on the web)."
    )


def test_an_actor_of_another_tenant_is_refused(store: Path) -> None:
    north = TenantFactory()
    stranger = UserFactory(tenant=TenantFactory())
    with pytest.raises(PackageRejected) as caught:
        _import(north, hz.valid(), actor_id=stranger.pk)
    assert caught.value.reason == "The person importing is not a member of this tenant."
    assert files_under(store) == []


def test_an_inactive_or_unknown_tenant_is_refused(store: Path) -> None:
    import uuid

    with pytest.raises(PackageRejected) as caught:
        package_import(
            tenant_id=uuid.uuid4(), actor_id=None, fileobj=io.BytesIO(hz.valid()), filename="c.zip"
        )
    assert caught.value.reason == "The district to import into does not exist or is not active."
    assert files_under(store) == []


def test_import_is_audited(store: Path) -> None:
    tenant = TenantFactory()
    teacher = UserFactory(tenant=tenant)
    info = _import(tenant, hz.valid("Audited"), actor_id=teacher.pk)
    entry = AuditLog.objects.get(action="scorm.package_import")
    assert (entry.tenant_id, entry.actor_id, entry.target_id) == (tenant.pk, teacher.pk, str(info.id))
    assert entry.details == {"content_hash": info.content_hash, "version": "1.2", "scos": 1}


# --- manage.py scorm_import ---------------------------------------------------------


def test_command_prints_one_json_object(store: Path, capsys: Any) -> None:
    TenantFactory(slug="north")
    path = FIXTURES / "RuntimeBasicCalls_SCORM12.zip"
    call_command("scorm_import", "--tenant", "north", str(path))
    out = json.loads(capsys.readouterr().out)
    package = ScormPackage.objects.get()
    assert {k: out[k] for k in ("id", "version", "title")} == {
        "id": str(package.pk),
        "version": "1.2",
        "title": "Golf Explained - Run-time Basic Calls",
    }
    assert [(s["identifier"], s["href"]) for s in out["scos"]] == [("item_1", "shared/launchpage.html")]


def test_command_rejection_exits_non_zero_with_the_reason_and_no_traceback(
    store: Path, tmp_path: Path, capsys: Any
) -> None:
    from django.core.management import execute_from_command_line

    TenantFactory(slug="north")
    bad = tmp_path / "slip.zip"
    bad.write_bytes(hz.with_entry("../../evil.html"))
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "scorm_import", "--tenant", "north", str(bad)])
    captured = capsys.readouterr()
    assert exited.value.code == 1
    assert captured.out == ""
    assert captured.err == (
        "CommandError: Package rejected: An entry's name climbs out of the package with '..': '../../evil.html'\n"
    )
    assert "Traceback" not in captured.err
    assert files_under(store) == []


def test_command_unknown_tenant(store: Path) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("scorm_import", "--tenant", "nowhere", str(FIXTURES / "RuntimeBasicCalls_SCORM12.zip"))
    assert str(caught.value) == "No active tenant has the slug 'nowhere'."


def test_s3_storage_is_configured_from_the_environment(tmp_path: Path) -> None:
    """SCORM_S3_BUCKET switches the "scorm" storage to django-storages' S3 backend
    (built here without touching the network; the suite uses the local backend)."""
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup();"
        "from django.core.files.storage import storages;"
        "s = storages['scorm'];"
        "print(type(s).__module__ + '.' + type(s).__name__, s.bucket_name, s.file_overwrite)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "SCORM_S3_BUCKET": "hub-scorm",
        "SCORM_S3_REGION": "eu-west-1",
        "VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "storages.backends.s3.S3Storage hub-scorm False"
