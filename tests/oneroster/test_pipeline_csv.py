"""The CSV sync end to end, through the real pipeline into the real core tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from oneroster.models import RosterConnection, SourceRecord, StagedRecord, SyncRun
from oneroster.protocol.generator import District
from oneroster.services import (
    SyncRefused,
    sync_run_approve,
    sync_run_create,
    sync_run_execute,
    sync_run_reject,
)
from tests.factories import TenantFactory, UserFactory
from tutoring_core.accounts.models import ExternalIdentity, GuardianLink, LinkCandidate, RoleAssignment, User
from tutoring_core.classes.models import Class, ClassKey, Course, Enrollment, School, Term

pytestmark = pytest.mark.django_db


@pytest.fixture
def conn() -> RosterConnection:
    return RosterConnection.objects.create(tenant=TenantFactory(slug="north"), name="SIS export")


def sync(conn: RosterConnection, path: Path, *, delta: bool = False, dry_run: bool = False) -> SyncRun:
    run = sync_run_create(
        connection=conn, mode="delta" if delta else "full", dry_run=dry_run, source_path=str(path)
    )
    return sync_run_execute(run_id=run.pk)


def snapshot(tenant: Any) -> dict[str, Any]:
    """Everything the sync may write, with timestamps: equal snapshots mean no writes."""
    return {
        "users": sorted(
            User.objects.filter(tenant=tenant).values_list("pk", "is_active", "last_name", "updated_at")
        ),
        "identities": ExternalIdentity.objects.filter(tenant=tenant).count(),
        "enrollments": sorted(
            Enrollment.objects.filter(tenant=tenant).values_list("pk", "status", "updated_at")
        ),
        "classes": sorted(Class.objects.filter(tenant=tenant).values_list("pk", "title", "updated_at")),
        "roles": sorted(
            RoleAssignment.objects.filter(tenant=tenant).values_list("pk", "is_active", "updated_at")
        ),
        "links": sorted(
            GuardianLink.objects.filter(tenant=tenant).values_list("pk", "is_active", "updated_at")
        ),
    }


def test_full_import_maps_everything_into_the_core(conn: RosterConnection, tmp_path: Path) -> None:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    run = sync(conn, tmp_path / "pkg")
    tenant = conn.tenant
    assert run.status == "succeeded", run.message
    assert run.counts["user"] == {
        "created": 124,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 0,
        "rejected": 0,
    }
    assert run.counts["enrollment"]["created"] == 378
    assert School.objects.filter(tenant=tenant).count() == 1  # the district org is not a school
    assert Term.objects.filter(tenant=tenant).count() == 3
    assert Term.objects.get(tenant=tenant, title="Semester 1").parent.title == "2026-2027"
    assert Course.objects.filter(tenant=tenant, school__name="School 1").count() == 6
    assert Class.objects.filter(tenant=tenant, source="oneroster").count() == 18
    klass = ClassKey.objects.get(
        tenant=tenant, kind="oneroster", issuer=str(conn.pk), subject="cls-0-0-0"
    ).klass
    assert klass.title == "Mathematics - Section 1"
    assert sorted(t.title for t in klass.terms.all()) == ["Semester 1", "Semester 2"]
    assert Enrollment.objects.filter(klass=klass, status="active").count() == 21  # 20 students + teacher
    assert User.objects.filter(tenant=tenant).count() == 124
    # ARCHITECTURE.md: a OneRoster user is ExternalIdentity(oneroster, <connection id>, sourcedId).
    student = ExternalIdentity.objects.get(
        tenant=tenant, kind="oneroster", issuer=str(conn.pk), subject="stu-0"
    ).user
    assert student.email == "s0@students.seeded.example"
    assert RoleAssignment.objects.get(user=student).role == "student"
    assert RoleAssignment.objects.get(user=student).school.name == "School 1"
    parent = ExternalIdentity.objects.get(tenant=tenant, subject="gdn-0").user
    assert list(GuardianLink.objects.filter(student=student).values_list("guardian", flat=True)) == [
        parent.pk
    ]
    admin = ExternalIdentity.objects.get(tenant=tenant, subject="adm-0").user
    assert RoleAssignment.objects.get(user=admin).role == "school_admin"  # never district_admin from a file
    assert StagedRecord.objects.count() == 0
    conn.refresh_from_db()
    assert conn.delta_since == run.fetch_started_at


def test_same_sync_twice_changes_nothing(conn: RosterConnection, tmp_path: Path) -> None:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    sync(conn, tmp_path / "pkg")
    before = snapshot(conn.tenant)
    again = sync(conn, tmp_path / "pkg")
    assert again.status == "succeeded"
    assert snapshot(conn.tenant) == before
    assert {e: (c["created"], c["updated"], c["deactivated"]) for e, c in again.counts.items()} == {
        e: (0, 0, 0) for e in again.counts
    }
    assert again.counts["enrollment"]["unchanged"] == 378


def test_version_1_2_package_gives_the_same_core_state(tmp_path: Path) -> None:
    District(60, seed=1).write_csv(tmp_path / "v11", version="1.1")
    District(60, seed=1).write_csv(tmp_path / "v12", version="1.2", as_zip=True)
    a = RosterConnection.objects.create(tenant=TenantFactory(slug="a"), name="a")
    b = RosterConnection.objects.create(tenant=TenantFactory(slug="b"), name="b")
    assert sync(a, tmp_path / "v11").status == "succeeded"
    assert sync(b, tmp_path / "v12").status == "succeeded"

    def shape(tenant: Any) -> tuple[Any, ...]:
        return (
            sorted(ExternalIdentity.objects.filter(tenant=tenant).values_list("subject", "user__last_name")),
            sorted(RoleAssignment.objects.filter(tenant=tenant).values_list("user__username", "role")),
            sorted(Enrollment.objects.filter(tenant=tenant).values_list("klass__code", "role", "status")),
            GuardianLink.objects.filter(tenant=tenant).count(),
        )

    assert shape(a.tenant)[0] == shape(b.tenant)[0]
    assert shape(a.tenant)[2:] == shape(b.tenant)[2:]
    assert sorted(r for _, r in shape(a.tenant)[1]) == sorted(r for _, r in shape(b.tenant)[1])


def test_delta_updates_deactivates_and_follows_a_rekey(conn: RosterConnection, tmp_path: Path) -> None:
    base = District(500, seed=6, change_rate=0.05, rekey_rate=0.01)
    base.write_csv(tmp_path / "full")
    assert sync(conn, tmp_path / "full").status == "succeeded"
    tenant = conn.tenant
    later = base.at(1)
    later.write_csv(tmp_path / "delta", mode="delta")
    withdrawn = [i for i in range(500) if later.withdrawn(i)]
    rekeyed = [
        i for i in range(500) if later.student_sid(i) != base.student_sid(i) and not later.withdrawn(i)
    ]
    renamed = [
        i
        for i in range(500)
        if not later.withdrawn(i)
        and later._student_row(i, 1)["familyName"] != base._student_row(i, 0)["familyName"]
    ]
    assert withdrawn and rekeyed and renamed
    people_before = User.objects.filter(tenant=tenant).count()
    history = {
        i: set(
            Enrollment.objects.filter(user__external_identities__subject=base.student_sid(i)).values_list(
                "pk", flat=True
            )
        )
        for i in rekeyed
    }
    run = sync(conn, tmp_path / "delta", delta=True)
    assert run.status == "succeeded", run.message
    # Nobody new: a re-keyed student is the same person under a second key.
    assert User.objects.filter(tenant=tenant).count() == people_before
    for i in rekeyed:
        old = ExternalIdentity.objects.get(tenant=tenant, subject=base.student_sid(i))
        new = ExternalIdentity.objects.get(tenant=tenant, subject=later.student_sid(i))
        assert old.user_id == new.user_id
        assert new.user.is_active
        still = set(Enrollment.objects.filter(user=new.user, status="active").values_list("pk", flat=True))
        assert history[i] & still, "the enrollments the person had are the ones they still have"
        assert SourceRecord.objects.get(
            connection=conn, entity="user", sourced_id=base.student_sid(i)
        ).replaced_by == (later.student_sid(i))
    for i in withdrawn:
        person = ExternalIdentity.objects.get(tenant=tenant, subject=base.student_sid(i)).user
        assert person.is_active is False  # deactivated, never deleted
        assert Enrollment.objects.filter(user=person, status="active").count() == 0
        assert Enrollment.objects.filter(user=person).count() == 6
    for i in renamed:
        person = ExternalIdentity.objects.get(tenant=tenant, subject=later.student_sid(i)).user
        assert person.last_name == later._student_row(i, 1)["familyName"]
    expected_active = sum(1 for _ in later.rows("enrollment"))
    assert Enrollment.objects.filter(tenant=tenant, status="active").count() == expected_active
    # The same delta again changes nothing.
    before = snapshot(tenant)
    assert sync(conn, tmp_path / "delta", delta=True).status == "succeeded"
    assert snapshot(tenant) == before


def test_full_sync_deactivates_by_absence_and_a_later_full_sync_converges(
    conn: RosterConnection, tmp_path: Path
) -> None:
    base = District(500, seed=9, change_rate=0.05)
    base.write_csv(tmp_path / "e0")
    sync(conn, tmp_path / "e0")
    later = base.at(2)
    later.write_csv(tmp_path / "e2")
    run = sync(conn, tmp_path / "e2")
    assert run.status == "succeeded", run.message
    gone = sum(1 for i in range(500) if later.withdrawn(i))
    assert run.counts["user"]["deactivated"] == 2 * gone
    assert User.objects.filter(tenant=conn.tenant, is_active=False).count() == 2 * gone
    assert Enrollment.objects.filter(tenant=conn.tenant, status="active").count() == sum(
        1 for _ in later.rows("enrollment")
    )


def test_guard_pauses_a_large_removal_until_approved(conn: RosterConnection, tmp_path: Path) -> None:
    District(100, seed=1).write_csv(tmp_path / "full")
    sync(conn, tmp_path / "full")
    truncated = tmp_path / "truncated"
    shutil.copytree(tmp_path / "full", truncated)
    lines = (truncated / "users.csv").read_text().splitlines()
    (truncated / "users.csv").write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # half the people
    enrollments = (truncated / "enrollments.csv").read_text().splitlines()
    kept = {line.split(",")[0] for line in lines[1 : len(lines) // 2]}
    (truncated / "enrollments.csv").write_text(
        "\n".join([enrollments[0], *[e for e in enrollments[1:] if e.split(",")[5] in kept]]) + "\n"
    )
    before = snapshot(conn.tenant)
    run = sync(conn, truncated)
    assert run.status == "awaiting_approval"
    assert run.guard["limit"] == 0.1
    assert run.guard["entities"]["user"]["active"] == 206
    assert "deactivate more than 10% of" in run.message
    assert snapshot(conn.tenant) == before  # nothing applied while waiting
    with pytest.raises(SyncRefused):
        sync_run_create(connection=conn, source_path=str(truncated))  # one live run per connection
    sync_run_approve(run=run, actor=None)
    run = sync_run_execute(run_id=run.pk)
    assert run.status == "succeeded"
    assert (
        User.objects.filter(tenant=conn.tenant, is_active=False).count()
        == run.counts["user"]["deactivated"]
        > 20
    )


def test_rejected_pause_applies_nothing(conn: RosterConnection, tmp_path: Path) -> None:
    District(100, seed=1).write_csv(tmp_path / "full")
    sync(conn, tmp_path / "full")
    empty = tmp_path / "empty"
    shutil.copytree(tmp_path / "full", empty)
    for name in ("users.csv", "enrollments.csv"):
        (empty / name).write_text((empty / name).read_text().splitlines()[0] + "\n")
    before = snapshot(conn.tenant)
    run = sync(conn, empty)
    assert run.status == "awaiting_approval"
    run = sync_run_reject(run=run, actor=None)
    assert run.status == "rejected"
    assert snapshot(conn.tenant) == before
    assert StagedRecord.objects.count() == 0
    with pytest.raises(SyncRefused):
        sync_run_approve(run=run, actor=None)


def _broken_package(tmp_path: Path) -> Path:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    users = (tmp_path / "pkg" / "users.csv").read_text().splitlines()
    assert users[5].startswith("stu-0,")
    users[5] = users[5].replace(",student,", ",pupil,")  # line 6: a role outside the vocabulary
    (tmp_path / "pkg" / "users.csv").write_text("\n".join(users) + "\n")
    enrollments = (tmp_path / "pkg" / "enrollments.csv").read_text().splitlines()
    enrollments.append("enr-x,,,cls-9-9-9,sch-0,stu-0,student,false,2026-08-17,")  # unknown class
    (tmp_path / "pkg" / "enrollments.csv").write_text("\n".join(enrollments) + "\n")
    return tmp_path / "pkg"


def test_validation_errors_apply_nothing_and_name_file_and_line(
    conn: RosterConnection, tmp_path: Path
) -> None:
    run = sync(conn, _broken_package(tmp_path))
    assert run.status == "failed"
    assert "nothing was applied" in run.message
    sid = "stu-0"
    errors = sorted((e.location, e.line, e.sourced_id, e.message) for e in run.errors.all())
    assert (
        "users.csv",
        6,
        sid,
        "role 'pupil' is not one of administrator, aide, guardian, parent, proctor, relative, student, teacher",
    ) in errors
    assert (
        "enrollments.csv",
        380,
        "enr-x",
        "classSourcedId 'cls-9-9-9' does not name a valid class in this sync",
    ) in errors
    # The student's six enrollments and the parent's agent record cascade from the bad user row.
    assert run.error_count == len(errors) == 2 + 6 + 1
    assert User.objects.filter(tenant=conn.tenant).count() == 0
    assert Enrollment.objects.count() == 0
    assert SourceRecord.objects.count() == 0


def test_apply_valid_rows_mode_lists_every_rejected_row(conn: RosterConnection, tmp_path: Path) -> None:
    conn.apply_valid_rows = True
    conn.save()
    run = sync(conn, _broken_package(tmp_path))
    assert run.status == "succeeded"
    assert run.message == "Applied with 9 rejected row(s)."
    assert run.counts["user"]["created"] == 123
    assert run.counts["user"]["rejected"] == 1
    assert run.counts["enrollment"]["rejected"] == 7
    assert User.objects.filter(tenant=conn.tenant).count() == 123
    assert Enrollment.objects.filter(tenant=conn.tenant).count() == 378 - 6


def test_dry_run_reports_and_applies_nothing(conn: RosterConnection, tmp_path: Path) -> None:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    run = sync(conn, tmp_path / "pkg", dry_run=True)
    assert run.status == "succeeded"
    assert run.counts["enrollment"]["created"] == 378
    assert User.objects.count() == 0
    assert SourceRecord.objects.count() == 0


def test_email_match_is_only_a_candidate(conn: RosterConnection, tmp_path: Path) -> None:
    existing = UserFactory(tenant=conn.tenant, email="s0@students.seeded.example")
    District(60, seed=1).write_csv(tmp_path / "pkg")
    sync(conn, tmp_path / "pkg")
    roster = ExternalIdentity.objects.get(tenant=conn.tenant, subject="stu-0").user
    assert roster.pk != existing.pk
    assert list(LinkCandidate.objects.values_list("user", "candidate", "reason")) == [
        (roster.pk, existing.pk, "email")
    ]


def test_unreadable_source_fails_cleanly(conn: RosterConnection, tmp_path: Path) -> None:
    run = sync(conn, tmp_path / "nowhere")
    assert run.status == "failed"
    assert run.message == f"{tmp_path / 'nowhere'} does not exist."
    assert [e.message for e in run.errors.all()] == [run.message]


def test_management_command_prints_a_json_summary_last(
    conn: RosterConnection, tmp_path: Path, capsys: Any
) -> None:
    District(60, seed=1).write_csv(tmp_path / "pkg")
    call_command("oneroster_import", str(tmp_path / "pkg"), tenant="north")
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "succeeded"
    assert summary["counts"]["enrollment"]["created"] == 378
    assert summary["errors"] == []
    assert "applying" in err  # the progress bar
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "oneroster_import",
            str(_broken_package(tmp_path / "b")),
            tenant="north",
            dry_run=True,
            no_progress=True,
        )
    assert exit_info.value.code == 1
    summary = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
    assert summary["status"] == "failed"
    assert summary["error_count"] == 9
    assert {"entity": "user", "location": "users.csv", "line": 6} in [
        {k: e[k] for k in ("entity", "location", "line")} for e in summary["errors"]
    ]


def test_a_run_whose_worker_died_is_taken_over_but_a_live_one_is_not(
    conn: RosterConnection, tmp_path: Path
) -> None:
    import datetime as dt

    from django.utils import timezone

    District(30, seed=1).write_csv(tmp_path / "pkg")
    run = sync_run_create(connection=conn, source_path=str(tmp_path / "pkg"))
    SyncRun.objects.filter(pk=run.pk).update(
        status="running", started_at=timezone.now() - dt.timedelta(minutes=5)
    )
    assert sync_run_execute(run_id=run.pk).status == "running"  # still within its time limit: left alone
    assert User.objects.count() == 0
    SyncRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(hours=4))
    finished = sync_run_execute(run_id=run.pk)
    assert (finished.status, finished.attempts) == ("succeeded", 1)
    assert User.objects.filter(tenant=conn.tenant).count() == 1 + 2 + 30 + 30


def test_a_later_lti_launch_joins_the_roster_person_by_sourcedid(
    conn: RosterConnection, tmp_path: Path
) -> None:
    from tutoring_core.accounts import api as accounts

    District(30, seed=1).write_csv(tmp_path / "pkg")
    sync(conn, tmp_path / "pkg")
    roster_person = ExternalIdentity.objects.get(tenant=conn.tenant, kind="oneroster", subject="stu-3").user
    # ARCHITECTURE.md: LTI's lis.person_sourcedid names the OneRoster sourcedId.
    result = accounts.person_resolve(
        tenant=conn.tenant,
        key=accounts.IdentityKey(kind="lti", issuer="https://lms.example.org", subject="lti-sub-3"),
        profile=accounts.PersonProfile(),
        link_hints=[accounts.LinkHint(kind="oneroster", subject="stu-3")],
    )
    assert (result.user_id, result.created, result.matched_by) == (roster_person.pk, False, "hint:oneroster")
