"""Grade passback under a hostile platform.

N score posts (default 10,000) go to a loopback LMS (tests/peers/lti_advantage_platform.py)
that enforces a per-second rate limit, fails 20% of score posts (500, 429,
timeouts in equal parts) and is down for a 30-second window. The hub's path is
the production one: results recorded with tutoring_core.progress (outbox rows
in the same transaction), a real Celery worker (threads pool; Redis or in-memory
broker) running the per-platform dispatcher (lti_advantage.dispatch_scores, woken
on commit and by the beat sweep), the shared token cache, throttling and retries.
The baseline, measured in the same run against a fresh platform with the same
faults, posts each score once with no outbox (what a tool that sends grades
inline from the request does).

Reports delivered / lost / duplicated, throughput as a share of the platform's
allowed rate, and token requests against the number of token lifetimes the run
spanned. The last line of output is one JSON object with the figures.

    .venv/bin/python bench/ags.py            # 10,000 posts (a few minutes)
    .venv/bin/python bench/ags.py --quick    # 400 posts, under a minute

The default limit (50 requests/s) is one a single small machine running web,
worker, database and this fake LMS at once can saturate; raise --rate on a
bigger one. Redis (127.0.0.1:6379, databases 13 and 14) is used as cache and
broker when it runs, as in production; otherwise the database cache and an
in-memory broker.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def configure(args: argparse.Namespace, workdir: Path) -> str:
    cache = args.cache
    if cache == "auto":
        cache = "redis" if _redis_up() else "db"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="true",
        SECRET_KEY="bench-secret-key-0123456789abcdef0123456789abcdef",
        FIELD_ENCRYPTION_KEYS="dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=",
        OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true",
        VAR_DIR=str(workdir / "var"),
        DATABASE_URL=args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14" if cache == "redis" else "memory://",
        CELERY_TASK_DEFAULT_QUEUE=f"bench-ags-{uuid.uuid4().hex[:8]}",
        CACHE_KEY_PREFIX=f"bench-{uuid.uuid4().hex[:8]}",
        LOG_LEVEL="ERROR",
        # The tool is configured with the platform's published limit.
        LTI_AGS_RATE_LIMIT_PER_SECOND=str(args.rate),
        LTI_AGS_MAX_CONCURRENCY=str(args.workers),
        LTI_ADVANTAGE_READ_TIMEOUT=str(args.read_timeout),
        LTI_AGS_BACKOFF_BASE_SECONDS="0.5",
        LTI_AGS_BACKOFF_CAP_SECONDS="8",
        LTI_AGS_CIRCUIT_PAUSE_SECONDS="1",
        LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS="4",
        LTI_AGS_LEASE_SECONDS="30",
    )
    if cache == "redis":
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/13"
        import redis

        # Databases 13 (cache) and 14 (broker) are this bench's own: start clean, so
        # a run that was cut short leaves no queued work behind for this one.
        for db in (13, 14):
            redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    return cache


def seed(lms: Any, count: int, students: int) -> tuple[Any, dict[tuple[str, str], int]]:
    """A class with ``students`` students and enough placements for ``count`` scores."""
    from django.db import transaction

    from lti_tool.advantage.services import placement_register
    from lti_tool.models import Deployment, LtiContext, PlatformRegistration
    from tutoring_core.accounts.models import ExternalIdentity, Role, Tenant, User
    from tutoring_core.classes.models import Class, Enrollment
    from tutoring_core.progress import api as progress

    context = "Bench-Ctx"
    items = math.ceil(count / students)
    tenant = Tenant.objects.create(slug=f"bench-{uuid.uuid4().hex[:6]}", name="Bench District")
    klass = Class.objects.create(tenant=tenant, title="Bench class")
    registration = PlatformRegistration.objects.create(
        tenant=tenant,
        issuer=lms.issuer,
        client_id=lms.client_id,
        auth_login_url=lms.base_url + "/auth",
        auth_token_url=lms.token_url,
        key_set_url=lms.base_url + "/jwks",
    )
    deployment = Deployment.objects.create(tenant=tenant, registration=registration, deployment_id="d1")
    LtiContext.objects.create(
        tenant=tenant, registration=registration, deployment=deployment, context_id=context, klass=klass
    )
    learners = []
    with transaction.atomic():
        for n in range(students):
            user = User.objects.create(tenant=tenant, username=f"bench-s{n}")
            Enrollment.objects.create(tenant=tenant, klass=klass, user=user, role=Role.STUDENT)
            sub = f"Bench-Sub-{n}"
            ExternalIdentity.objects.create(
                tenant=tenant, kind=ExternalIdentity.Kind.LTI, issuer=lms.issuer, subject=sub, user=user
            )
            lms.add_member(context, sub, ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"])
            learners.append((user, sub))
    placements = []
    for i in range(items):
        platform_item = lms.add_lineitem(
            context, label=f"Task {i}", scoreMaximum=100, resourceLinkId=f"rl-{i}"
        )
        placements.append(
            placement_register(
                tenant=tenant,
                registration_id=registration.pk,
                class_id=klass.pk,
                resource_link_id=f"rl-{i}",
                title=f"Task {i}",
                score_maximum=100,
                lineitem_url=platform_item["id"],
            )
        )
    expected: dict[tuple[str, str], int] = {}
    made = 0
    for line_item in placements:
        with transaction.atomic():  # enqueued on commit, one batch per column
            for n, (user, sub) in enumerate(learners):
                if made == count:
                    break
                score = (n * 7 + made) % 101
                progress.result_record(
                    tenant=tenant,
                    activity_id=line_item.activity_id,
                    user_id=user.pk,
                    score_given=score,
                    source=progress.ResultSource.SCORM,
                )
                expected[(line_item.url, sub)] = score
                made += 1
    return registration, expected


def faults_for(args: argparse.Namespace, outage_start: float) -> Any:
    from tests.peers.lti_advantage_platform import Faults

    share = args.failure_share / 3
    return Faults(
        share_500=share,
        share_429=share,
        share_timeout=share,
        timeout_seconds=args.read_timeout + 0.5,
        outage=(outage_start, outage_start + args.outage),
        rate_limit_per_second=args.rate,
        seed=42,
    )


def tally(lms: Any, expected: dict[tuple[str, str], int]) -> dict[str, int]:
    delivered = sum(
        1
        for (item, sub), score in expected.items()
        if (found := lms.latest_score(item, sub)) is not None and found.get("scoreGiven") == score
    )
    return {"delivered": delivered, "lost": len(expected) - delivered, "duplicated": lms.stats.duplicates}


def steady_share(lms: Any, rate: int, outage: tuple[float, float] | None) -> float:
    """The same share, over the seconds before the last 1% of requests: the rate
    held while a backlog existed, without the backoff tail of the last retries."""
    seconds = lms.stats.admitted_per_second
    if not seconds or outage is None:
        return 0.0
    total = sum(seconds.values())
    running, end = 0, max(seconds)
    for second in sorted(seconds):
        running += seconds[second]
        if running >= 0.99 * total:
            end = second
            break
    first = min(seconds)
    span = [s for s in range(first, end + 1) if not (int(outage[0]) <= s < int(outage[1]) + 1)]
    if not span:
        return 0.0
    return sum(seconds.get(s, 0) for s in span) / (rate * len(span))


def throughput(lms: Any, rate: int, outage: tuple[float, float] | None) -> tuple[float, int, int]:
    """Requests the platform admitted (within its limit) per second of time it was
    up, as a share of its allowed rate."""
    seconds = lms.stats.admitted_per_second
    if not seconds or outage is None:
        return 0.0, 0, 0
    first, last = min(seconds), max(seconds)
    span = last - first + 1
    down = max(0, min(last + 1, int(outage[1])) - max(first, int(outage[0])))
    up = max(1, span - down)
    used = sum(seconds.values())
    return used / (rate * up), used, up


def run_hub(args: argparse.Namespace) -> tuple[dict[str, Any], dict[tuple[str, str], int]]:
    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from lti_tool import api as lti_api
    from lti_tool.advantage.tasks import sweep_score_outbox
    from tests.peers.lti_advantage_platform import AdvantagePlatform
    from tutoring_core.progress.models import OutboxEntry, OutboxStatus

    with AdvantagePlatform(
        issuer="https://lms.bench.test", client_id="bench-hub", token_ttl=args.token_ttl
    ) as lms:
        lms.set_tool_jwks(lti_api.tool_jwks())
        seed_started = time.monotonic()
        _, expected = seed(lms, args.count, args.students)
        seed_seconds = time.monotonic() - seed_started
        start = time.time()
        lms.faults = faults_for(args, start + args.outage_after)
        stop = threading.Event()

        def beat() -> None:  # celery beat's sweep (LTI_AGS_SWEEP_SECONDS), every 5 s here
            while not stop.wait(5.0):
                sweep_score_outbox()

        sweeper = threading.Thread(target=beat, daemon=True)
        with start_worker(
            app, pool="threads", concurrency=args.workers, perform_ping_check=False, shutdown_timeout=30
        ):
            sweeper.start()
            deadline = time.monotonic() + args.timeout
            open_states = (OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT)
            while OutboxEntry.objects.filter(status__in=open_states).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            elapsed = time.time() - start
            stop.set()
        failed = OutboxEntry.objects.filter(status=OutboxStatus.FAILED).count()
        if os.environ.get("BENCH_TRACE"):
            first = min(lms.stats.admitted_per_second)
            print(
                "admitted per second:",
                [lms.stats.admitted_per_second.get(first + i, 0) for i in range(int(elapsed) + 1)],
            )
            print("outage (s into the run):", [round(t - start, 1) for t in lms.faults.outage or ()])
        share, used, up = throughput(lms, args.rate, lms.faults.outage)
        window = args.token_ttl - min(60, args.token_ttl // 10)
        return {
            **tally(lms, expected),
            "failed_rows": failed,
            "elapsed_s": round(elapsed, 1),
            "seed_s": round(seed_seconds, 1),
            "throughput_share": round(share, 3),
            "steady_throughput_share": round(steady_share(lms, args.rate, lms.faults.outage), 3),
            "requests_admitted": used,
            "seconds_up": up,
            "token_requests": lms.stats.token_requests,
            "token_windows": math.ceil(elapsed / window),
            "resent_after_accept": lms.stats.resent_after_accept,
            "faults": {
                "500": lms.stats.injected_500,
                "429": lms.stats.injected_429,
                "timeouts": lms.stats.injected_timeouts,
                "outage_refusals": lms.stats.outage_refusals,
                "rate_limited": lms.stats.rate_limited,
            },
        }, expected


def run_naive(args: argparse.Namespace, scores: list[tuple[str, str, int]]) -> dict[str, Any]:
    """Baseline: one POST per score, no outbox, no retry, as fast as it can go."""
    import datetime as dt

    from lti_tool.advantage.protocol.ags import Score, score_payload, scores_url
    from tests.peers.lti_advantage_platform import AdvantagePlatform
    from tutoring_core import http

    with AdvantagePlatform(issuer="https://lms.bench.test", client_id="bench-naive", token_ttl=3600) as lms:
        context = "Bench-Ctx"
        ids = {}
        for item, sub, _score in scores:
            lms.add_member(context, sub, ["Learner"])
            if item not in ids:
                ids[item] = lms.add_lineitem(context, label=item, scoreMaximum=100)["id"]
        # The baseline authenticates with a token it is handed (no token cost counted).
        from lti1p3platform.registration import Registration

        token = Registration.encode_and_sign(
            {
                "sub": lms.client_id,
                "iss": lms.issuer,
                "scopes": "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            },
            lms.private_pem,
            expiration=3600,
        )
        lms._token_issued[token] = time.time()
        start = time.time()
        lms.faults = faults_for(args, start + args.outage_after)
        expected = {}

        def post(entry: tuple[str, str, int]) -> None:
            item, sub, score = entry
            body = score_payload(
                Score(
                    user_id=sub,
                    timestamp=dt.datetime.now(dt.UTC),
                    activity_progress="Completed",
                    grading_progress="FullyGraded",
                    score_given=Decimal(score),
                    score_maximum=Decimal(100),
                )
            )
            try:
                http.post(
                    scores_url(ids[item]),
                    data=json.dumps(body),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/vnd.ims.lis.v1.score+json",
                    },
                    timeout=(2.0, args.read_timeout),
                    retries=0,
                )
            except http.OutboundHTTPError:
                pass  # an inline sender has nowhere to keep it

        # Paced like a request-driven sender: scores arrive at the platform's rate.
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            for n, entry in enumerate(scores):
                expected[(ids[entry[0]], entry[1])] = entry[2]
                target = start + n / args.rate
                delay = target - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, entry)
        elapsed = time.time() - start
        share, _used, _up = throughput(lms, args.rate, lms.faults.outage)
        return {**tally(lms, expected), "elapsed_s": round(elapsed, 1), "throughput_share": round(share, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 posts, 4 s outage (under a minute)")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--rate", type=int, default=50, help="the platform's allowed requests per second")
    parser.add_argument("--failure-share", type=float, default=0.20)
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the platform is down")
    parser.add_argument(
        "--outage-after", type=float, default=15.0, help="seconds into the run the outage starts"
    )
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--read-timeout", type=float, default=1.0)
    parser.add_argument("--token-ttl", type=int, default=60, help="platform token lifetime, seconds")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="give up waiting after this many seconds"
    )
    parser.add_argument("--cache", choices=("auto", "redis", "db"), default="auto")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if args.quick:
        args.count, args.students, args.outage, args.outage_after, args.token_ttl = 400, 20, 4.0, 2.0, 10
        args.timeout = 120.0

    with tempfile.TemporaryDirectory(prefix="bench-ags-") as tmp:
        cache = configure(args, Path(tmp))
        hub, expected = run_hub(args)
        naive = run_naive(args, [(item, sub, score) for (item, sub), score in expected.items()])

    rows = [
        ("score posts", args.count, args.count),
        ("delivered", hub["delivered"], naive["delivered"]),
        ("lost", hub["lost"], naive["lost"]),
        ("duplicated", hub["duplicated"], naive["duplicated"]),
        ("throughput / allowed rate", f"{hub['throughput_share']:.1%}", f"{naive['throughput_share']:.1%}"),
        ("  same, before the last 1%", f"{hub['steady_throughput_share']:.1%}", "-"),
        ("elapsed (s)", hub["elapsed_s"], naive["elapsed_s"]),
        ("token requests", f"{hub['token_requests']} (windows: {hub['token_windows']})", "-"),
    ]
    print(
        f"AGS delivery: {args.count} posts, limit {args.rate}/s, {args.failure_share:.0%} transient failures "
        f"(500/429/timeout), {args.outage:.0f}s outage; cache={cache}, workers={args.workers}"
    )
    print(f"{'':28}{'hub (outbox + worker)':>24}{'baseline (post once)':>24}")
    for name, a, b in rows:
        print(f"{name:28}{a!s:>24}{b!s:>24}")
    print(
        f"hub faults seen: {hub['faults']}; resent after a lost answer: {hub['resent_after_accept']}; "
        f"failed rows: {hub['failed_rows']}; seeding took {hub['seed_s']}s (not timed)"
    )
    print(
        json.dumps(
            {
                "bench": "ags",
                "quick": args.quick,
                "count": args.count,
                "rate": args.rate,
                "cache": cache,
                "hub": hub,
                "baseline": naive,
            }
        )
    )


if __name__ == "__main__":
    main()
