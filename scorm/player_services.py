"""The player's writes: a package placed in a class, attempts (policy, resume), and
commits of CMI data with the results worked out on the server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from scorm.models import ScormActivity, ScormAttempt, ScormPackage, ScormSco
from scorm.protocol import cmi
from tutoring_core.accounts.api import Role, Tenant, User, audit_record
from tutoring_core.classes import api as classes
from tutoring_core.progress import api as progress
from tutoring_core.rows import save_fields, set_changed


class PlayerError(Exception):
    """A refusal with a reason a person can act on, and the HTTP status to answer with."""

    def __init__(
        self, reason: str, *, status: int = 400, errors: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.errors = errors or []


def activity_key(*, class_id: uuid.UUID, package_id: uuid.UUID) -> str:
    """The progress activity key of a package played in a class; an LMS placement of the
    package in that class uses the same key, so its gradebook column gets these results."""
    return f"scorm:{class_id}:{package_id}"


def activity_for_class(*, tenant: Tenant, class_id: uuid.UUID, package: ScormPackage) -> ScormActivity:
    """The package as played in the class (made on first use; idempotent)."""
    found = ScormActivity.objects.filter(klass_id=class_id, package=package).first()
    if found is not None:
        return found
    ref = progress.activity_upsert(
        tenant=tenant,
        class_id=class_id,
        key=activity_key(class_id=class_id, package_id=package.pk),
        title=package.title[:255],
    )
    try:
        with transaction.atomic():
            return ScormActivity.objects.create(
                tenant=tenant,
                klass_id=class_id,
                package=package,
                title=package.title[:255],
                activity_id=ref.id,
            )
    except IntegrityError:
        return ScormActivity.objects.get(klass_id=class_id, package=package)


MAX_ATTEMPTS_LIMIT = 100


def activity_attempts_set(*, activity: ScormActivity, max_attempts: int, actor: User) -> bool:
    """Sets how many attempts a learner gets at a placed package (0: no limit); audited.
    Attempts already made stay; a learner who had used them all may start another
    when the new number allows it. False when it was that number already."""
    if not 0 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise PlayerError(
            f"Attempts allowed must be a whole number from 0 (no limit) to {MAX_ATTEMPTS_LIMIT}."
        )
    with transaction.atomic():
        before = (
            ScormActivity.objects.select_for_update()
            .filter(pk=activity.pk)
            .values_list("max_attempts", flat=True)
            .get()
        )
        if before == max_attempts:
            return False
        ScormActivity.objects.filter(pk=activity.pk).update(
            max_attempts=max_attempts, updated_at=timezone.now()
        )
        audit_record(
            tenant=activity.tenant,
            actor=actor,
            action="scorm.attempts_policy",
            target=activity,
            details={"max_attempts": max_attempts, "was": before},
        )
    activity.max_attempts = max_attempts
    return True


def attempt_for_launch(*, activity: ScormActivity, sco: ScormSco, learner: User) -> ScormAttempt:
    """The attempt a launch plays: the latest one unless it is finished, else a new
    one while the activity's attempts policy allows (PlayerError 409 when used up)."""
    for _ in range(3):
        latest = (
            ScormAttempt.objects.filter(activity=activity, sco=sco, learner=learner)
            .order_by("-number")
            .first()
        )
        if latest is not None and latest.state != ScormAttempt.State.FINISHED:
            return latest
        number = 1 if latest is None else latest.number + 1
        if activity.max_attempts and number > activity.max_attempts:
            raise PlayerError(
                f"You have used all {activity.max_attempts} attempts at this activity; "
                "your teacher can allow more.",
                status=409,
            )
        try:
            with transaction.atomic():
                return ScormAttempt.objects.create(
                    tenant_id=activity.tenant_id, activity=activity, sco=sco, learner=learner, number=number
                )
        except IntegrityError:
            continue  # two launches at once: the other made it
    raise PlayerError("Could not start an attempt; try again.", status=409)


def attempt_entry(attempt: ScormAttempt, version: str) -> str:
    """cmi.entry / cmi.core.entry for the next session of this attempt."""
    if attempt.commits == 0:
        return "ab-initio"
    if (
        attempt.state == ScormAttempt.State.SUSPENDED
        or attempt.cmi.get("cmi.exit" if cmi.is_2004(version) else "cmi.core.exit") == "suspend"
    ):
        return "resume"
    return ""


def initial_values(attempt: ScormAttempt) -> dict[str, str]:
    sco = attempt.sco
    version = sco.package.version
    learner = attempt.learner
    name = ", ".join(p for p in (learner.last_name, learner.first_name) if p) or learner.username
    return cmi.initial_values(
        version,
        attempt.cmi,
        learner_id=str(learner.pk),
        learner_name=name,
        entry=attempt_entry(attempt, version),
        total_seconds=attempt.total_seconds + attempt.session_seconds,
        mastery_score=sco.mastery_score,
        launch_data=sco.data_from_lms,
        max_time_allowed=sco.max_time_allowed,
        time_limit_action=sco.time_limit_action,
    )


@dataclass(frozen=True)
class CommitResult:
    applied: bool  # False: a replayed or out-of-date commit, ignored
    state: str
    completion: str
    success: str
    score: Decimal | None


def attempt_commit(
    *, attempt_id: uuid.UUID, session: str, sequence: int | None, values: object, terminate: bool
) -> CommitResult:
    """Store one commit of the runtime: every element checked first (a bad one rejects
    the whole commit, nothing written), then merged into the attempt under its row
    lock; completion, success and score worked out from the stored data and, when they
    changed, recorded as a progress result (which queues the LMS delivery).

    One transaction: the attempt read with its lock (and what the rules need) and one
    UPDATE of the columns that changed; a commit that changes the outcome adds the
    progress result's writes. Pinned in tests/scorm/test_commit_queries.py; the latency
    at 100 learners is bench/scorm_commit.py."""
    if not isinstance(values, dict):
        raise PlayerError("The commit carries no CMI data.")
    if not session or len(session) > 64:
        raise PlayerError("The commit names no runtime session.")
    with transaction.atomic():
        # of=("self",): only the attempt row is locked. A plain FOR UPDATE over the
        # join would also lock the SCO, package and activity rows every learner of the
        # course shares, and so put all their commits in one queue.
        # get(), not first(): first() would order by the model's ordering, which
        # follows its foreign keys into joins of their own orderings.
        try:
            attempt = (
                ScormAttempt.objects.select_for_update(of=("self",))
                .select_related("sco__package", "activity__tenant")
                .get(pk=attempt_id)
            )
        except ScormAttempt.DoesNotExist:
            raise PlayerError("No such attempt.", status=404) from None
        version = attempt.sco.package.version
        try:
            accepted = cmi.validate_commit(version, values)
        except cmi.CmiRejected as exc:
            raise PlayerError(
                f"The course sent data the SCORM {version} data model does not allow: {exc}",
                errors=exc.errors,
            ) from None
        if attempt.state == ScormAttempt.State.FINISHED:
            raise PlayerError(
                "This attempt is finished; open the activity again to start a new one.", status=409
            )
        if session == attempt.session_key and sequence is not None and sequence <= attempt.last_sequence:
            return CommitResult(False, attempt.state, attempt.completion, attempt.success, attempt.score)
        changes: dict[str, object] = {}
        total_seconds, session_seconds, last_sequence = (
            attempt.total_seconds,
            attempt.session_seconds,
            attempt.last_sequence,
        )
        if session != attempt.session_key:
            # A new sitting: the last one's time counts in the total from now on.
            total_seconds += session_seconds
            session_seconds = Decimal(0)
            last_sequence = -1
            changes["session_key"] = session
        if sequence is not None:
            last_sequence = sequence
        stored = {**attempt.cmi, **accepted}
        time_element = "cmi.session_time" if cmi.is_2004(version) else "cmi.core.session_time"
        if time_element in accepted:
            session_seconds = cmi.timespan_seconds(version, accepted[time_element])
        result = cmi.outcome(version, stored, mastery_score=attempt.sco.mastery_score)
        state = attempt.state
        finished_at = attempt.finished_at
        if terminate:
            ends = not result.suspended and (cmi.is_2004(version) or result.completed)
            state = ScormAttempt.State.FINISHED if ends else ScormAttempt.State.SUSPENDED
            if ends:
                finished_at = timezone.now()
        elif state == ScormAttempt.State.SUSPENDED:
            state = ScormAttempt.State.OPEN
        changes.update(
            {
                "total_seconds": total_seconds,
                "session_seconds": session_seconds,
                "last_sequence": last_sequence,
                "cmi": stored,
                "commits": attempt.commits + 1,
                "completion": result.completion if not result.completed else "completed",
                "success": result.success,
                "score": result.score_percent,
                "state": state,
                "finished_at": finished_at,
            }
        )
        changed = set_changed(attempt, changes)
        summary = f"{attempt.completion}|{attempt.success}|{attempt.score}"
        if summary != attempt.recorded and attempt.completion != "not attempted" and _record(attempt):
            attempt.recorded = summary
            changed.append("recorded")
        save_fields(attempt, changed)
    return CommitResult(True, attempt.state, attempt.completion, attempt.success, attempt.score)


def _record(attempt: ScormAttempt) -> bool:
    """The attempt's outcome as a progress result, for a student of the class (a
    teacher trying the course out records nothing)."""
    activity = attempt.activity
    roles = classes.class_member_roles(
        tenant_id=activity.tenant_id, class_id=activity.klass_id, user_id=attempt.learner_id
    )
    if Role.STUDENT not in roles:
        return False
    completed = attempt.completion == "completed"
    if attempt.score is not None and completed:
        grading = progress.GradingProgress.FULLY_GRADED
    elif completed:
        grading = progress.GradingProgress.NOT_READY
    else:
        grading = progress.GradingProgress.PENDING
    progress.result_record(
        tenant=activity.tenant,
        activity_id=activity.activity_id,
        user_id=attempt.learner_id,
        score_given=attempt.score,
        source=progress.ResultSource.SCORM,
        activity_progress=progress.ActivityProgress.COMPLETED
        if completed
        else progress.ActivityProgress.IN_PROGRESS,
        grading_progress=grading,
        comment=f"SCORM attempt {attempt.number}: {attempt.completion}, {attempt.success}",
    )
    return True
