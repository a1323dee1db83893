"""Session attendance in progress (issue 15 point 4): the writes and reads of SessionAttendance.

Apart from services.py (results and their outbox), which is long enough already: attendance is
its own record, not a score, and nothing here goes to an LMS gradebook.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from tutoring_core.accounts.api import audit_record
from tutoring_core.accounts.models import User
from tutoring_core.progress.data import AttendanceFacts, AttendanceRecord, AttendanceSummary
from tutoring_core.progress.errors import ProgressError
from tutoring_core.progress.models import (
    AttendanceOutcome,
    AttendanceSource,
    SessionAttendance,
    SessionAttendanceHistory,
)

# The columns one computation or correction sets; a change to any of them is a new version.
_STATE = (
    "outcome",
    "first_joined_at",
    "last_left_at",
    "minutes_present",
    "late_minutes",
    "left_early_minutes",
    "source",
    "corrected_by_id",
    "corrected_at",
)


def _record(row: SessionAttendance) -> AttendanceRecord:
    return AttendanceRecord(
        id=row.pk,
        session_id=row.session_id,
        person_id=row.person_id,
        outcome=row.outcome,
        first_joined_at=row.first_joined_at,
        last_left_at=row.last_left_at,
        minutes_present=row.minutes_present,
        late_minutes=row.late_minutes,
        left_early_minutes=row.left_early_minutes,
        source=row.source,
        corrected_by_id=row.corrected_by_id,
        corrected_at=row.corrected_at,
        version=row.version,
    )


def _replace(row: SessionAttendance, state: dict[str, object]) -> bool:
    """Copy the row's current state to its history, then write ``state`` as the next version;
    False (and nothing written) when ``state`` changes nothing."""
    if all(getattr(row, name) == value for name, value in state.items()):
        return False
    SessionAttendanceHistory.objects.create(
        attendance=row,
        version=row.version,
        replaced_at=timezone.now(),
        **{name: getattr(row, name) for name in _STATE},
    )
    for name, value in state.items():
        setattr(row, name, value)
    row.version += 1
    row.save(update_fields=[*state, "version", "updated_at"])
    return True


def _check_outcome(outcome: str) -> None:
    if outcome not in AttendanceOutcome.values:
        raise ProgressError(f"Give one of: {', '.join(AttendanceOutcome.values)}.")


@transaction.atomic
def attendance_record(*, facts: AttendanceFacts) -> AttendanceRecord:
    """Record what the room worked out for one participant (at the room's end, again when a
    provider's late webhook makes it recompute). Repeating it with the same facts changes
    nothing; a row a tutor corrected is left as the tutor set it."""
    _check_outcome(facts.outcome)
    if facts.source == AttendanceSource.TUTOR_CORRECTION or facts.source not in AttendanceSource.values:
        raise ProgressError("A room's attendance comes from signaling, a provider or its join page.")
    state: dict[str, object] = {
        "outcome": facts.outcome,
        "first_joined_at": facts.first_joined_at,
        "last_left_at": facts.last_left_at,
        "minutes_present": facts.minutes_present,
        "late_minutes": facts.late_minutes,
        "left_early_minutes": facts.left_early_minutes,
        "source": facts.source,
        "corrected_by_id": None,
        "corrected_at": None,
    }
    row, _ = _locked(facts)
    if row.source != AttendanceSource.TUTOR_CORRECTION:
        _replace(row, state)
    return _record(row)


def _locked(facts: AttendanceFacts, *, corrected_by: User | None = None) -> tuple[SessionAttendance, bool]:
    """The session's row for the person, locked, and whether this call made it (from ``facts``,
    as ``corrected_by``'s correction when given)."""
    lookup = {"session_id": facts.session_id, "person_id": facts.person_id}
    row = SessionAttendance.objects.select_for_update().filter(**lookup).first()
    if row is not None:
        return row, False
    try:
        with transaction.atomic():  # a savepoint: a concurrent first write wins, we read it
            made = SessionAttendance.objects.create(
                tenant_id=facts.tenant_id,
                class_id=facts.class_id,
                session_start=facts.session_start,
                session_end=facts.session_end,
                outcome=facts.outcome,
                first_joined_at=facts.first_joined_at,
                last_left_at=facts.last_left_at,
                minutes_present=facts.minutes_present,
                late_minutes=facts.late_minutes,
                left_early_minutes=facts.left_early_minutes,
                source=facts.source,
                corrected_by=corrected_by,
                corrected_at=timezone.now() if corrected_by is not None else None,
                **lookup,
            )
            return made, True
    except IntegrityError:
        return SessionAttendance.objects.select_for_update().get(**lookup), False


@transaction.atomic
def attendance_correct(*, actor: User, facts: AttendanceFacts, outcome: str) -> AttendanceRecord:
    """A tutor sets one participant's outcome (the caller checked they are the session's tutor).
    The replaced state stays in the history; the correction is audited.

    ``facts.source`` is the room's source when a room measured the session; it is
    TUTOR_CORRECTION when nothing was measured (an outcome set on the session page or through the
    API): a first record is then made as the correction itself, at version 1."""
    _check_outcome(outcome)
    if actor.tenant_id != facts.tenant_id:
        raise ProgressError("No such session.")
    unmeasured = facts.source == AttendanceSource.TUTOR_CORRECTION
    row, made = _locked(
        dataclasses.replace(facts, outcome=outcome) if unmeasured else facts,
        corrected_by=actor if unmeasured else None,
    )
    if made and unmeasured:
        _audit_correction(actor=actor, row=row, before="")
        return _record(row)
    if (row.source, row.outcome, row.corrected_by_id) == (
        AttendanceSource.TUTOR_CORRECTION,
        outcome,
        actor.pk,
    ):
        return _record(row)  # the same correction again (a resubmitted form): nothing to record
    before = row.outcome
    now = timezone.now()
    changed = _replace(
        row,
        {
            "outcome": outcome,
            "source": AttendanceSource.TUTOR_CORRECTION,
            "corrected_by_id": actor.pk,
            "corrected_at": now,
        },
    )
    if changed:
        _audit_correction(actor=actor, row=row, before=before)
    return _record(row)


def _audit_correction(*, actor: User, row: SessionAttendance, before: str) -> None:
    audit_record(
        tenant=actor.tenant,
        actor=actor,
        action="progress.attendance.correct",
        target=row,
        details={
            "session": str(row.session_id),
            "person": str(row.person_id),
            "from": before,
            "to": row.outcome,
            "version": row.version,
        },
    )


def attendance_for_session(*, session_id: uuid.UUID) -> list[AttendanceRecord]:
    rows = SessionAttendance.objects.filter(session_id=session_id).order_by("person_id")
    return [_record(row) for row in rows]


def attendance_summaries(
    *, tenant_id: uuid.UUID, person_ids: Iterable[uuid.UUID], class_id: uuid.UUID | None = None
) -> dict[uuid.UUID, AttendanceSummary]:
    """Each person's sessions by outcome (only the class's sessions when ``class_id`` is given),
    in one query; a person with no recorded session gets an all-zero summary."""
    people = list(person_ids)
    rows = SessionAttendance.objects.filter(tenant_id=tenant_id, person_id__in=people)
    if class_id is not None:
        rows = rows.filter(class_id=class_id)
    counts: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in people}
    for person_id, outcome, number in (
        rows.order_by().values_list("person_id", "outcome").annotate(number=Count("id"))
    ):
        counts[person_id][outcome] = number
    return {pid: AttendanceSummary(person_id=pid, **by_outcome) for pid, by_outcome in counts.items()}
