"""Roster pages that tell the truth (issue 11 point 5): a non-UTF-8 file on Test and
on Run, a failed run shown failed, rows read during the fetch, steps in words, the
connection form checked per kind, and a roster zip uploaded from the browser."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from oneroster import pipeline
from oneroster.models import RosterConnection, StagedRecord, SyncError, SyncRun
from oneroster.protocol import csv_source
from oneroster.protocol.csv_source import first_non_utf8
from oneroster.protocol.generator import District
from oneroster.services import sync_run_execute
from oneroster.tasks import sync_run_task
from tests.factories import TenantFactory, UserFactory, district_admin
from tutoring_core.accounts.models import AuditLog, ExternalIdentity, User
from tutoring_core.classes.models import Enrollment

pytestmark = pytest.mark.django_db

# The seeded district's first non-ASCII name ("á") is on line 17 of users.csv.
LATIN1_LINE = 17


def latin1_users(folder: Path) -> None:
    """Re-save users.csv as Latin-1, as a SIS (or a spreadsheet) often exports it."""
    users = folder / "users.csv"
    users.write_bytes(users.read_text("utf-8").encode("latin-1"))


@pytest.fixture
def setup(tmp_path: Path, settings: Any) -> dict[str, Any]:
    settings.ONEROSTER_CSV_ROOT = tmp_path / "drops"
    settings.MEDIA_ROOT = tmp_path / "media"
    District(300, seed=1).write_csv(tmp_path / "drops" / "north")
    tenant = TenantFactory(slug="north")
    return {
        "tenant": tenant,
        "tmp": tmp_path,
        "conn": RosterConnection.objects.create(tenant=tenant, name="SIS drop", csv_path="north"),
        "owner": district_admin(tenant, username="north-admin"),
        "teacher": UserFactory(tenant=tenant, username="north-teacher"),
        "outsider": district_admin(TenantFactory(slug="south"), username="south-admin"),
    }


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- a non-UTF-8 file ------------------------------------------------------------------

MESSAGE = f"file users.csv is not UTF-8 (byte 0xe1 at line {LATIN1_LINE})"


def test_latin1_users_csv_on_test_names_the_file_byte_and_line(client: Any, setup: dict[str, Any]) -> None:
    latin1_users(setup["tmp"] / "drops" / "north")
    client.force_login(setup["owner"])
    response = client.post(reverse("oneroster:connection_test", args=[setup["conn"].pk]), follow=True)
    assert response.status_code == 200
    assert messages_of(response) == [f"Connection test failed: {MESSAGE}"]
    assert SyncRun.objects.count() == 0


def test_latin1_users_csv_on_run_fails_the_run_with_its_reason(
    client: Any, setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    latin1_users(setup["tmp"] / "drops" / "north")
    client.force_login(setup["owner"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("oneroster:connection_run", args=[setup["conn"].pk]), {"mode": "full"})
    run = SyncRun.objects.get()
    assert response.status_code == 302 and len(callbacks) == 1
    sync_run_task.apply(args=[str(run.pk)])
    run.refresh_from_db()
    assert (run.status, run.message, run.error_count) == ("failed", MESSAGE, 1)
    assert list(SyncError.objects.filter(run=run).values_list("location", "line", "message")) == [
        ("users.csv", LATIN1_LINE, MESSAGE)
    ]
    # Nothing applied, nothing left staged.
    assert User.objects.filter(tenant=setup["tenant"]).count() == 2  # the owner and the teacher
    assert ExternalIdentity.objects.count() == 0
    assert StagedRecord.objects.count() == 0

    page = client.get(reverse("oneroster:run_detail", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd id="status">Failed</dd>' in html
    assert f'<p id="reason">{MESSAGE}</p>' in html
    assert '<dd id="error-count">1</dd>' in html
    assert "100%" not in html and "<progress" not in html

    progress = client.get(reverse("oneroster:run_progress", args=[run.pk])).json()
    assert {
        k: progress[k] for k in ("status", "failed", "reason", "percent", "error_count", "phase_label")
    } == {
        "status": "failed",
        "failed": True,
        "reason": MESSAGE,
        "percent": None,
        "error_count": 1,
        "phase_label": "Stopped",
    }
    assert progress["errors"] == [
        {"entity": "", "location": "users.csv", "line": LATIN1_LINE, "sourcedId": "", "message": MESSAGE}
    ]


def test_latin1_manifest_is_named_too(setup: dict[str, Any]) -> None:
    manifest = setup["tmp"] / "drops" / "north" / "manifest.csv"
    manifest.write_bytes(manifest.read_bytes() + "source.name,Lycée\n".encode("latin-1"))
    run = SyncRun.objects.create(tenant=setup["tenant"], connection=setup["conn"])
    run = sync_run_execute(run_id=run.pk)
    lines = manifest.read_bytes().count(b"\n")
    assert (run.status, run.message) == (
        "failed",
        f"file manifest.csv is not UTF-8 (byte 0xe9 at line {lines})",
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 64])
def test_first_non_utf8_finds_the_same_byte_whatever_the_chunk(monkeypatch: Any, chunk: int) -> None:
    monkeypatch.setattr(csv_source, "ENCODING_SCAN_CHUNK", chunk)
    good = "a,b\nZoë,€\n𝄞,ß\n".encode()
    assert first_non_utf8(io.BytesIO(good)) is None
    assert first_non_utf8(io.BytesIO(good + b"x,\xe9\n")) == (0xE9, 4)
    assert first_non_utf8(io.BytesIO(good + "€".encode()[:2])) == (0xE2, 4)  # cut short at the end
    far = b"x" * 99 + b"\n"
    assert first_non_utf8(io.BytesIO(far * 2000 + "Zoë".encode("latin-1"))) == (0xEB, 2001)


# --- progress in words -----------------------------------------------------------------


def test_progress_during_the_fetch_shows_rows_read(
    client: Any, setup: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setattr(pipeline.staging, "STAGE_BATCH", 500)
    client.force_login(setup["owner"])
    run = SyncRun.objects.create(tenant=setup["tenant"], connection=setup["conn"])
    seen: list[tuple[Any, ...]] = []

    def watch(step: str, done: int, total: int) -> None:
        if step != "stage":
            return
        page = client.get(reverse("oneroster:run_detail", args=[run.pk])).content.decode()
        progress = client.get(reverse("oneroster:run_progress", args=[run.pk])).json()
        seen.append(
            (
                progress["phase"],
                progress["phase_label"],
                progress["rows_read"],
                progress["percent"],
                progress["progress_text"],
                f"{done:,} rows read so far." in page and "/ 0 rows" not in page,
                '<dd id="phase">Reading the roster</dd>' in page,
            )
        )

    run = sync_run_execute(run_id=run.pk, progress=watch)
    assert run.status == "succeeded", run.message
    assert seen == [
        ("fetch", "Reading the roster", n, None, f"{n:,} rows read so far.", True, True)
        for n in (500, 1000, 1500, 2000, 2500, 3000, 3500, 3787)
    ]
    page = client.get(reverse("oneroster:run_detail", args=[run.pk])).content.decode()
    assert "<td>Reading the roster</td>" in page and "<td>Applying people</td>" in page
    assert "fetch_stage" not in page and "this_attempt" not in page
    progress = client.get(reverse("oneroster:run_progress", args=[run.pk])).json()
    assert (progress["percent"], progress["phase_label"], progress["failed"]) == (100, "Finished", False)
    assert progress["progress_text"] == f"{run.progress_total:,} of {run.progress_total:,} changes applied."


# --- the connection form ---------------------------------------------------------------

BASE_FORM = {
    "name": "SIS",
    "is_active": "on",
    "page_size": 1000,
    "max_concurrency": 2,
    "requests_per_second": 10,
    "delta_overlap_minutes": 15,
    "max_deactivation_share": 0.1,
    "scopes": "x",
}


def post_add(client: Any, **fields: Any) -> Any:
    return client.post(reverse("admin:oneroster_rosterconnection_add"), {**BASE_FORM, **fields})


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


def test_a_new_connection_ticks_no_schedule_and_lists_fields_per_kind(
    client: Any, setup: dict[str, Any]
) -> None:
    client.force_login(setup["owner"])
    page = client.get(reverse("admin:oneroster_rosterconnection_add"))
    form = page.context["adminform"].form
    assert (form["schedule_delta"].value(), form["schedule_full"].value()) == (False, False)
    html = page.content.decode()
    assert 'id="roster-kind-fields"' in html and "oneroster/connection_kind.js" in html
    assert '"csv": ["csv_path"]' in html and '"csv_upload": ["upload_status"]' in html


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"kind": "csv"},
            {"csv_path": ["A CSV connection needs the server folder or zip its export is dropped into."]},
        ),
        (
            {"kind": "csv", "csv_path": "south"},
            {
                "csv_path": [
                    "south does not exist in the roster drop folder; create it (or drop the export) first."
                ]
            },
        ),
        (
            {"kind": "csv", "csv_path": "../../etc"},
            {"csv_path": ["../../etc is outside the roster drop folder ({root})."]},
        ),
        (
            {"kind": "rest_1_1", "base_url": "ftp://sis.example.org", "client_id": "c", "client_secret": "s"},
            {"base_url": ["Use an address that starts with https:// (or http://)."]},
        ),
        (
            {"kind": "rest_1_1", "base_url": "https://", "client_id": "c", "client_secret": "s"},
            {"base_url": ["'https://' is not a well-formed URL."]},
        ),
        (
            {"kind": "rest_1_1", "base_url": "http://10.1.2.3/sis", "client_id": "c", "client_secret": "s"},
            {"base_url": ["10.1.2.3 is a private or local address; the hub only calls public addresses."]},
        ),
        (
            {"kind": "rest_1_1", "base_url": "http://localhost:8000", "client_id": "c", "client_secret": "s"},
            {"base_url": ["localhost is a private or local address; the hub only calls public addresses."]},
        ),
        (
            {"kind": "rest_1_1", "base_url": "https://93.184.216.34", "csv_path": "../../etc"},
            {
                "client_id": ["A OneRoster REST connection needs its OAuth client id."],
                "client_secret": ["A OneRoster REST connection needs its OAuth secret."],
            },
        ),
        (
            {"kind": "rest_1_2", "base_url": "https://93.184.216.34", "client_id": "c", "client_secret": "s"},
            {"token_url": ["OneRoster 1.2 needs the OAuth 2.0 token URL."]},
        ),
        (
            {
                "kind": "rest_1_2",
                "base_url": "https://93.184.216.34",
                "token_url": "https://[::1]/token",
                "client_id": "c",
                "client_secret": "s",
            },
            {"token_url": ["::1 is a private or local address; the hub only calls public addresses."]},
        ),
        (
            {"kind": "google_classroom", "client_id": "sa@example.iam", "client_secret": "pem"},
            {"delegated_user": ["Google Classroom needs the Workspace admin the service account acts as."]},
        ),
    ],
)
def test_the_form_checks_the_fields_of_its_kind_by_name(
    client: Any, setup: dict[str, Any], settings: Any, fields: dict[str, str], errors: dict[str, list[str]]
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    root = Path(settings.ONEROSTER_CSV_ROOT).resolve()
    client.force_login(setup["owner"])
    expected = {name: [m.format(root=root) for m in messages] for name, messages in errors.items()}
    assert form_errors(post_add(client, **fields)) == expected
    assert RosterConnection.objects.count() == 1


def test_other_kinds_fields_are_neither_checked_nor_saved(
    client: Any, setup: dict[str, Any], settings: Any
) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    client.force_login(setup["owner"])
    response = post_add(
        client, kind="csv", csv_path="north", base_url="not a url", token_url="ftp://x", delegated_user="x"
    )
    assert response.status_code == 302
    conn = RosterConnection.objects.get(name="SIS")
    assert (conn.kind, conn.csv_path, conn.base_url, conn.token_url, conn.delegated_user) == (
        "csv",
        "north",
        "",
        "",
        "",
    )
    assert (conn.schedule_delta, conn.schedule_full, conn.tenant) == (False, False, setup["tenant"])
    # And the other way: a REST connection keeps the folder it had, unchecked.
    url = reverse("admin:oneroster_rosterconnection_change", args=[conn.pk])
    response = client.post(
        url,
        {
            **BASE_FORM,
            "kind": "rest_1_1",
            "base_url": "https://93.184.216.34",
            "client_id": "c",
            "client_secret": "s",
            "csv_path": "../../etc",
        },
    )
    assert response.status_code == 302
    conn.refresh_from_db()
    assert (conn.kind, conn.base_url, conn.csv_path) == ("rest_1_1", "https://93.184.216.34", "north")


# --- a roster zip uploaded from the browser -----------------------------------------------


def upload_connection(setup: dict[str, Any]) -> RosterConnection:
    return RosterConnection.objects.create(tenant=setup["tenant"], name="Uploads", kind="csv_upload")


def zip_bytes(setup: dict[str, Any], **kwargs: Any) -> bytes:
    path = District(30, seed=1).write_csv(setup["tmp"] / "pkg.zip", as_zip=True, **kwargs)
    return path.read_bytes()


def stored_files(setup: dict[str, Any]) -> list[str]:
    media = setup["tmp"] / "media"
    return (
        sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()) if media.exists() else []
    )


def post_zip(client: Any, conn: RosterConnection, content: bytes, name: str = "roster.zip") -> Any:
    upload = io.BytesIO(content)
    upload.name = name
    return client.post(reverse("oneroster:connection_upload", args=[conn.pk]), {"zip_file": upload})


def test_upload_test_and_run_a_zip_end_to_end(
    client: Any, setup: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    conn = upload_connection(setup)
    client.force_login(setup["owner"])
    page = client.get(reverse("oneroster:connection_upload", args=[conn.pk]))
    assert page.status_code == 200 and b"No zip has been uploaded for this connection yet." in page.content
    content = zip_bytes(setup)
    response = post_zip(client, conn, content, name="../../SIS export.zip")
    assert response.status_code == 302
    conn.refresh_from_db()
    assert conn.upload.name.startswith(f"oneroster/{setup['tenant'].pk}/{conn.pk}/")
    assert (conn.upload_name, conn.upload_size) == ("SIS export.zip", len(content))
    assert stored_files(setup) == [conn.upload.name]
    assert (setup["tmp"] / "media" / conn.upload.name).read_bytes() == content
    audit = AuditLog.objects.get(action="roster.zip_uploaded")
    assert (audit.actor, audit.details["files"]) == (
        setup["owner"],
        ["academicsessions.csv", "classes.csv", "courses.csv", "enrollments.csv", "orgs.csv", "users.csv"],
    )

    tested = client.post(reverse("oneroster:connection_test", args=[conn.pk]), follow=True)
    assert messages_of(tested)[-1].startswith("Connection test passed: CSV 1.1 package readable")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("oneroster:connection_run", args=[conn.pk]), {"mode": "full"})
    assert len(callbacks) == 1
    run = SyncRun.objects.get(connection=conn)
    sync_run_task.apply(args=[str(run.pk)])
    run.refresh_from_db()
    assert run.status == "succeeded", run.message
    assert Enrollment.objects.filter(tenant=setup["tenant"]).count() == 2 * 6 + 30 * 6

    # A new zip replaces the old one; the old file goes once the new one is committed.
    old = conn.upload.name
    with django_capture_on_commit_callbacks(execute=True):
        assert post_zip(client, conn, zip_bytes(setup, version="1.2")).status_code == 302
    conn.refresh_from_db()
    assert conn.upload.name != old
    assert stored_files(setup) == [conn.upload.name]


def test_a_latin1_file_in_an_uploaded_zip_is_named_on_test(client: Any, setup: dict[str, Any]) -> None:
    folder = setup["tmp"] / "latin1"
    District(300, seed=1).write_csv(folder)
    latin1_users(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"export/{path.name}")
    conn = upload_connection(setup)
    client.force_login(setup["owner"])
    assert post_zip(client, conn, buffer.getvalue()).status_code == 302
    response = client.post(reverse("oneroster:connection_test", args=[conn.pk]), follow=True)
    assert messages_of(response)[-1:] == [
        f"Connection test failed: file export/users.csv is not UTF-8 (byte 0xe1 at line {LATIN1_LINE})"
    ]


def _zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # stored: the sizes are the bytes
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


USERS = b"sourcedId,givenName,familyName\nu1,A,B\n"


@pytest.mark.parametrize(
    ("content", "limits", "error"),
    [
        (
            _zip_of({"users.csv": USERS * 400}),
            {"ONEROSTER_UPLOAD_MAX_BYTES": 1024},
            "The file is larger than the 1.0\xa0KB limit.",
        ),
        (
            _zip_of({"users.csv": USERS, "../../evil.csv": b"x"}),
            {},
            "The zip entry '../../evil.csv' points outside the zip's folder; it is refused.",
        ),
        (
            _zip_of({"users.csv": USERS, "/etc/passwd": b"x"}),
            {},
            "The zip entry '/etc/passwd' points outside the zip's folder; it is refused.",
        ),
        (
            _zip_of({"users.csv": USERS, "C:/x.csv": b"x"}),
            {},
            "The zip entry 'C:/x.csv' points outside the zip's folder; it is refused.",
        ),
        (
            _zip_of({f"f{i}.csv": b"x" for i in range(4)} | {"users.csv": USERS}),
            {"ONEROSTER_UPLOAD_MAX_ENTRIES": 4},
            "The zip holds 5 entries; a roster zip may hold at most 4.",
        ),
        (
            _zip_of({"users.csv": b"0" * 5000}),
            {"ONEROSTER_UPLOAD_MAX_UNPACKED_BYTES": 4096},
            "The zip unpacks to 5000 bytes; at most 4096 are allowed.",
        ),
        (
            _zip_of({"readme.txt": b"hello"}),
            {},
            "The zip holds no OneRoster CSV files (orgs.csv, users.csv, classes.csv, ...).",
        ),
        (b"sourcedId,givenName\n", {}, "The file is not a zip file."),
    ],
    ids=["oversize", "traversal", "absolute", "drive", "entries", "bomb", "no-roster", "not-a-zip"],
)
def test_a_refused_zip_says_why_and_stores_nothing(
    client: Any, setup: dict[str, Any], settings: Any, content: bytes, limits: dict[str, int], error: str
) -> None:
    for name, value in limits.items():
        setattr(settings, name, value)
    conn = upload_connection(setup)
    client.force_login(setup["owner"])
    response = post_zip(client, conn, content)
    assert response.status_code == 400
    assert list(response.context["form"].errors["zip_file"]) == [error]
    assert 'role="alert"' in response.content.decode()
    conn.refresh_from_db()
    assert (conn.upload.name, conn.upload_name, conn.upload_size, conn.uploaded_at) == ("", "", 0, None)
    assert stored_files(setup) == []
    assert not AuditLog.objects.filter(action="roster.zip_uploaded").exists()


def test_upload_is_refused_for_a_folder_connection_and_while_a_run_is_live(
    client: Any, setup: dict[str, Any]
) -> None:
    client.force_login(setup["owner"])
    response = post_zip(client, setup["conn"], zip_bytes(setup))
    assert response.status_code == 400
    assert list(response.context["form"].errors["zip_file"]) == [
        "SIS drop does not take uploads; set its kind to “OneRoster CSV zip uploaded here” first."
    ]
    conn = upload_connection(setup)
    SyncRun.objects.create(tenant=setup["tenant"], connection=conn, status="running")
    response = post_zip(client, conn, zip_bytes(setup))
    assert list(response.context["form"].errors["zip_file"]) == [
        "A sync of Uploads is queued, running or waiting for approval; upload the new zip when it has finished."
    ]
    assert stored_files(setup) == []


@pytest.mark.parametrize("persona", ["teacher", "outsider"])
def test_other_personas_cannot_see_or_upload(client: Any, setup: dict[str, Any], persona: str) -> None:
    conn = upload_connection(setup)
    client.force_login(setup[persona])
    url = reverse("oneroster:connection_upload", args=[conn.pk])
    assert client.get(url).status_code == 404
    assert post_zip(client, conn, zip_bytes(setup)).status_code == 404
    assert stored_files(setup) == []
    conn.refresh_from_db()
    assert conn.upload.name == ""
