"""Headless Chromium plays real SCORM packages from the fixtures (the golf samples):
answers the quiz, suspends, resumes where it left off; the server then shows the
completion and score it worked out itself, and the grade reaches the loopback LMS's
AGS endpoint through the outbox. The content origin (127.0.0.2) never sees the app's
(localhost) session cookie, cannot read the app's pages, and the app refuses to be
framed by it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from lti_tool.advantage.delivery import score_deliver
from lti_tool.advantage.services import placement_register
from scorm.models import ScormAttempt
from scorm.player_services import activity_key
from tests.lti_advantage.conftest import CONTEXT, make_world
from tests.peers.lti_advantage_platform import AdvantagePlatform
from tests.scorm.player_world import FIXTURES, content_server
from tutoring_core.progress.models import OutboxEntry

pytestmark = [pytest.mark.browser, pytest.mark.peer]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def env(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.FRAME_ANCESTORS = []
    settings.SCORM_AUTOCOMMIT_SECONDS = 1
    with content_server(settings, live_server.url) as origin, AdvantagePlatform() as lms:
        yield {"base": live_server.url, "origin": origin, "lms": lms}


def _import(world: Any, zip_name: str) -> Any:
    from scorm.models import ScormPackage
    from scorm.services import package_import

    with (FIXTURES / zip_name).open("rb") as handle:
        info = package_import(
            tenant_id=world.tenant.pk, actor_id=world.teacher.pk, fileobj=handle, filename=zip_name
        )
    return ScormPackage.objects.get(pk=info.id)


def _gradable(world: Any, package: Any) -> Any:
    """What the deep-linking placement of the package does: an LMS column on the
    package's activity in the class."""
    item = world.lms.add_lineitem(CONTEXT, label=package.title, scoreMaximum=100, resourceLinkId="rl-golf")
    return placement_register(
        tenant=world.tenant,
        registration_id=world.registration.pk,
        class_id=world.klass.pk,
        resource_link_id="rl-golf",
        context_id=CONTEXT,
        title=package.title,
        lineitem_url=item["id"],
        lineitems_url=world.lms.lineitems_url(CONTEXT),
        activity_key=activity_key(class_id=world.klass.pk, package_id=package.pk),
    )


def _sign_in(context: Any, base: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])


def _frame(page: Any, part: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in page.frames:
            if part in frame.url:
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no frame {part!r}; frames: {[f.url for f in page.frames]}")


def _wait_attempt(attempt_filter: dict[str, Any], check: Any, timeout_s: float = 30) -> ScormAttempt:
    deadline = time.monotonic() + timeout_s
    attempt = None
    while time.monotonic() < deadline:
        attempt = ScormAttempt.objects.filter(**attempt_filter).order_by("-number").first()
        if attempt is not None and check(attempt):
            return attempt
        time.sleep(0.2)
    raise AssertionError(f"attempt never reached the state: {attempt and (attempt.state, attempt.cmi)}")


def _launch(page: Any, base: str, world: Any, package: Any) -> Any:
    page.goto(f"{base}/scorm/classes/{world.klass.pk}/packages/{package.pk}/play/")
    return _frame(page, "/shared/launchpage.html")


def _content_page(sco: Any) -> str:
    return sco.evaluate("document.getElementById('contentFrame').src")


def _answer_quiz(page: Any) -> int:
    """Every question right but the first numeric one, left blank; the score the
    SCO will report."""
    quiz = _frame(page, "assessmenttemplate.html")
    quiz.wait_for_selector("#frmTest")
    for radio in quiz.locator(".correctAnswer input[type=radio]").all():
        radio.check()
    total = quiz.evaluate(
        """() => {
        let skipped = false;
        for (const q of test.Questions) {
          if (q.Type === QUESTION_TYPE_NUMERIC) {
            const box = document.getElementById('question_' + q.Id + '_Text');
            if (!skipped) { skipped = true; box.value = ''; } else { box.value = String(q.CorrectAnswer); }
          }
        }
        return test.Questions.length;
    }"""
    )
    quiz.locator("input[value='Submit Answers']").click()
    return round((total - 1) * 100 / total)


def test_scorm12_golf_quiz_suspend_resume_and_grade_to_the_lms(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    world = make_world(env["lms"], students=1)
    student = world.students[0]
    package = _import(world, "RuntimeBasicCalls_SCORM12.zip")
    line_item = _gradable(world, package)
    base, origin = env["base"], env["origin"]
    seen_cookies: list[str] = []

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(Path(profile)), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            _sign_in(context, base, student)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            page.on(
                "request",
                lambda request: (
                    seen_cookies.append(request.headers.get("cookie", ""))
                    if request.url.startswith(origin)
                    else None
                ),
            )
            sco = _launch(page, base, world, package)
            sco.wait_for_function(
                "document.getElementById('contentFrame').src.indexOf('Playing/Playing.html') > 0"
            )
            for _ in range(3):
                sco.locator("#butNext").click()
            assert _content_page(sco).endswith("/Playing/OtherScoring.html")

            # Leave mid-course: the SCO suspends and the terminating commit goes by beacon.
            page.goto("about:blank")
            suspended = _wait_attempt({"learner": student}, lambda a: a.state == ScormAttempt.State.SUSPENDED)
            assert suspended.cmi["cmi.core.lesson_location"] == "3"
            # The SCO set "incomplete" only because its first read said "not attempted".
            assert suspended.cmi["cmi.core.lesson_status"] == "incomplete"
            assert suspended.cmi["cmi.core.exit"] == "suspend"
            assert (suspended.number, suspended.completion, suspended.score) == (1, "incomplete", None)

            # Come back: the same attempt, resumed at the bookmark (the SCO asks; we accept).
            sco = _launch(page, base, world, package)
            sco.wait_for_function(
                "document.getElementById('contentFrame').src.indexOf('Playing/OtherScoring.html') > 0"
            )
            for _ in range(11):
                sco.locator("#butNext").click()
            expected = _answer_quiz(page)
            sco.locator("#butExit").click()
            done = _wait_attempt({"learner": student}, lambda a: a.state == ScormAttempt.State.FINISHED)
        finally:
            context.close()

    assert (done.number, done.completion, done.success, done.score) == (1, "completed", "passed", expected)
    assert done.cmi["cmi.core.score.raw"] == str(expected)
    assert ScormAttempt.objects.filter(learner=student).count() == 1
    # Never a cookie on the content origin (the app's session cookie is localhost's).
    assert seen_cookies and set(seen_cookies) == {""}

    entries = OutboxEntry.objects.filter(destination_key=str(line_item.pk)).order_by("created_at")
    latest = entries.last()
    assert latest is not None
    assert score_deliver(entry_id=latest.pk).kind == "delivered"
    assert world.lms.score_log[-1]["scoreGiven"] == expected
    assert world.lms.score_log[-1]["activityProgress"] == "Completed"
    assert world.lms.score_log[-1]["gradingProgress"] == "FullyGraded"
    assert world.lms.score_log[-1]["userId"] == world.subs[student.pk]


def test_scorm2004_golf_resumes_and_completes(env: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    world = make_world(env["lms"], students=1)
    student = world.students[0]
    package = _import(world, "RuntimeBasicCalls_SCORM20043rdEdition.zip")
    base = env["base"]
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(Path(profile)), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            _sign_in(context, base, student)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            sco = _launch(page, base, world, package)
            sco.wait_for_function(
                "document.getElementById('contentFrame').src.indexOf('Playing/Playing.html') > 0"
            )
            for _ in range(2):
                sco.locator("#butNext").click()
            page.goto("about:blank")
            suspended = _wait_attempt({"learner": student}, lambda a: a.state == ScormAttempt.State.SUSPENDED)
            assert suspended.cmi["cmi.location"] == "2"
            assert suspended.cmi["cmi.completion_status"] == "incomplete"
            assert suspended.cmi["cmi.exit"] == "suspend"

            sco = _launch(page, base, world, package)
            sco.wait_for_function(
                "document.getElementById('contentFrame').src.indexOf('Playing/Scoring.html') > 0"
            )
            for _ in range(12):
                sco.locator("#butNext").click()
            expected = _answer_quiz(page)
            sco.locator("#butExit").click()
            done = _wait_attempt({"learner": student}, lambda a: a.state == ScormAttempt.State.FINISHED)
        finally:
            context.close()
    assert (done.number, done.completion, done.score) == (1, "completed", expected)
    assert done.success == ("passed" if expected >= 70 else "failed")


def test_the_content_origin_is_walled_off_from_the_app(env: dict[str, Any]) -> None:
    """From a page on the content origin: the app's pages cannot be read (no CORS for
    them, and never with credentials), the commit endpoint answers only the content
    origin and without credentials, and the app refuses to be framed there."""
    from playwright.sync_api import sync_playwright

    world = make_world(env["lms"], students=1)
    student = world.students[0]
    package = _import(world, "RuntimeBasicCalls_SCORM12.zip")
    base, origin = env["base"], env["origin"]
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(Path(profile)), executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            _sign_in(context, base, student)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            sco = _launch(page, base, world, package)
            assert sco.url.startswith(origin)
            attempts_path = f"/scorm/classes/{world.klass.pk}/attempts/"
            reads = sco.evaluate(
                """async ([base, attempts]) => {
                  const out = {};
                  for (const [name, url, init] of [
                    ["home", base + "/", {credentials: "include"}],
                    ["attempts", base + attempts, {credentials: "include"}],
                    ["commit_credentials", base + "/scorm/runtime/commit", {method: "POST", credentials: "include", body: "{}"}],
                    ["commit", base + "/scorm/runtime/commit", {method: "POST", credentials: "omit", body: "{}"}],
                  ]) {
                    try { const r = await fetch(url, init); out[name] = r.status; }
                    catch (e) { out[name] = "blocked"; }
                  }
                  return out;
                }""",
                [base, attempts_path],
            )
            # The commit endpoint is readable from the content origin (a 403: no token),
            # but not with credentials (no Allow-Credentials); the app's pages never.
            assert reads == {
                "home": "blocked",
                "attempts": "blocked",
                "commit_credentials": "blocked",
                "commit": 403,
            }
            # The app's page framed by a page of the content origin: refused by the browser.
            sco.evaluate(
                "([base, attempts]) => { const f = document.createElement('iframe'); f.id = 'probe';"
                " f.src = base + attempts; document.body.appendChild(f); }",
                [base, attempts_path],
            )
            page.wait_for_timeout(1500)
            probe = sco.locator("#probe").element_handle().content_frame()
            assert probe is not None
            assert not probe.url.startswith(base)  # the browser put its error page there
            assert "SCORM attempts" not in probe.content()
            cookies_here = context.cookies(origin)
        finally:
            context.close()
    assert cookies_here == []
