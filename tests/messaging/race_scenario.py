"""Helper process for test_workers_race.py: seeds a file database, queues the reminder
job, and reports, with the production settings module (as web and workers share one DB).

    python -m tests.messaging.race_scenario seed <sessions>
    python -m tests.messaging.race_scenario kick <times>
    python -m tests.messaging.race_scenario report
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any


def seed(sessions: int) -> dict[str, Any]:
    from django.utils import timezone

    from tutoring_core.accounts.models import GuardianLink, Tenant, User
    from tutoring_core.scheduling.models import Session, SessionParticipant

    tenant = Tenant.objects.create(slug="race", name="Race District", time_zone="America/Chicago")
    tutor = User.objects.create(
        tenant=tenant, username="race-tutor", email="tutor@race.test", first_name="Tia"
    )
    now = timezone.now()
    emails = [tutor.email]
    for i in range(sessions):
        student = User.objects.create(tenant=tenant, username=f"race-s{i}", email=f"s{i}@race.test")
        guardian = User.objects.create(tenant=tenant, username=f"race-g{i}", email=f"g{i}@race.test")
        GuardianLink.objects.create(tenant=tenant, guardian=guardian, student=student)
        # Within the hour (one after another): the 1-hour reminders are due.
        start = now + dt.timedelta(minutes=20 + 10 * i)
        session = Session.objects.create(
            tenant=tenant,
            tutor=tutor,
            start=start,
            end=start + dt.timedelta(minutes=10),
            block_start=start,
            block_end=start + dt.timedelta(minutes=10),
            status=Session.Status.BOOKED,
            time_zone="America/Chicago",
            created_by=student,
        )
        SessionParticipant.objects.create(tenant=tenant, session=session, student=student, booked_by=student)
        emails += [student.email, guardian.email]
    return {"emails": emails}


def kick(times: int) -> None:
    from tutoring_core.messaging.tasks import reminders_task

    for _ in range(times):
        reminders_task.delay()


def report() -> dict[str, Any]:
    from tutoring_core.messaging.models import Notification

    rows = Notification.objects.filter(kind="reminder").order_by("recipient__email")
    return {
        "rows": [
            {"to": r.recipient.email, "status": r.status, "attempts": r.attempts, "offset": r.offset_min}
            for r in rows.select_related("recipient")
        ]
    }


def main() -> None:
    import django

    django.setup()
    command = sys.argv[1]
    if command == "seed":
        print(json.dumps(seed(int(sys.argv[2]))))
    elif command == "kick":
        kick(int(sys.argv[2]))
    elif command == "report":
        print(json.dumps(report()))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
