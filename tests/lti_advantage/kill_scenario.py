"""Helper process for test_worker_killed.py: seeds a file database and reports on
it. It runs with the production settings module against a private SQLite file,
the way a web process and Celery workers share one database.

    python -m tests.lti_advantage.kill_scenario seed '<json>'
    python -m tests.lti_advantage.kill_scenario report
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any


def seed(args: dict[str, Any]) -> dict[str, Any]:
    from django.db import transaction

    from lti_tool import api as lti_api
    from lti_tool.advantage.services import placement_register
    from lti_tool.models import Deployment, LtiContext, PlatformRegistration
    from tutoring_core.accounts.models import ExternalIdentity, Role, Tenant, User
    from tutoring_core.classes.models import Class, Enrollment
    from tutoring_core.progress import api as progress

    tenant = Tenant.objects.create(slug="kill-test", name="Kill Test District")
    klass = Class.objects.create(tenant=tenant, title="Biology")
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        issuer=args["issuer"],
        client_id=args["client_id"],
        auth_login_url=args["base_url"] + "/auth",
        auth_token_url=args["token_url"],
        key_set_url=args["base_url"] + "/jwks",
    )
    deployment = Deployment.objects.create(tenant=tenant, registration=registration, deployment_id="dep-1")
    LtiContext.objects.create(
        tenant=tenant,
        registration=registration,
        deployment=deployment,
        context_id=args["context"],
        klass=klass,
    )
    line_item = placement_register(
        tenant=tenant,
        registration_id=registration.pk,
        class_id=klass.pk,
        resource_link_id="rl-Lab",
        title="Lab report",
        score_maximum=20,
        lineitem_url=args["lineitem_url"],
    )
    start = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
    for index, sub in enumerate(args["subs"]):
        user = User.objects.create(tenant=tenant, username=f"s{index}")
        Enrollment.objects.create(tenant=tenant, klass=klass, user=user, role=Role.STUDENT)
        ExternalIdentity.objects.create(
            tenant=tenant, kind=ExternalIdentity.Kind.LTI, issuer=args["issuer"], subject=sub, user=user
        )
        # Each result commits on its own, and its delivery task is enqueued on commit.
        with transaction.atomic():
            progress.result_record(
                tenant=tenant,
                activity_id=line_item.activity_id,
                user_id=user.pk,
                score_given=index + 1,
                source=progress.ResultSource.SCORM,
                recorded_at=start + dt.timedelta(seconds=index),
            )
    return {"jwks": lti_api.tool_jwks()}


def report() -> dict[str, Any]:
    from tutoring_core.progress.models import OutboxEntry

    return {
        "entries": [
            {"status": e.status, "attempts": e.attempts, "score": str(e.result.score_given)}
            for e in OutboxEntry.objects.select_related("result").order_by("result__recorded_at")
        ]
    }


def main() -> None:
    import django

    django.setup()
    command = sys.argv[1]
    if command == "seed":
        print(json.dumps(seed(json.loads(sys.argv[2]))))
    elif command == "report":
        print(json.dumps(report()))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
