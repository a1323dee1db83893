"""Every page a person can reach fits a 360 px wide screen (issue 11, point 8).

The demo district is loaded the way `manage.py demo_load` loads it (the core's people
and classes, then every settings.DEMO_LOADERS entry), in demo mode. Headless Chromium
at 360 x 740 then signs in as one person of each demo role, plus nobody, and crawls:
from the home page it follows every same-origin link (GET only), so pages other
helpers add later are crawled as soon as something links them. For the district admin
this includes the admin site, a bounded number of objects per model list.

A page fails when it scrolls sideways (document.documentElement.scrollWidth >
clientWidth), answers 5xx, or (on pages built on templates/base.html) its header takes
more than one line. The test lists every offending URL, and writes the pages it
visited per role to var/crawl-360.txt for the closing note.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.core.management import call_command

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
VIEWPORT = {"width": 360, "height": 740}
REPORT = Path(__file__).resolve().parents[2] / "var" / "crawl-360.txt"

# Links the crawl never follows: they end the session, delete, leave the site, or
# sign another person in (the simulator's "launch as" links replace the crawler's
# session with the persona's).
SKIP = [
    re.compile(pattern)
    for pattern in (
        r"^/signout/",
        r"^/admin/logout/",
        r"/delete/$",
        r"^/admin/r/",  # "view on site": a redirect to the object's page, crawled anyway
        r"^/lti/demo/\?(.*&)?as=",
        r"^/static/",
        r"^/media/",
    )
]
# Bounds that keep the crawl finite and quick while still seeing every kind of page.
ADMIN_OBJECTS_PER_MODEL = 1  # change pages (and their password pages) per model list
ADMIN_HISTORY_PAGES = 2
ADMIN_APP_INDEXES = 3
QUERY_VARIANTS_PER_PATH = 3  # e.g. a week view's previous/next weeks
MAX_PAGES_PER_ROLE = 300

# Where the document scrolls sideways, the widest elements sticking out (to fix them).
OVERFLOW_JS = """() => {
  const root = document.documentElement;
  const over = root.scrollWidth - root.clientWidth;
  if (over <= 0) return null;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const culprits = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > root.clientWidth + 1 && r.width > 0) {
      const parentRight = el.parentElement ? el.parentElement.getBoundingClientRect().right : 0;
      if (parentRight <= root.clientWidth + 1) culprits.push(name(el) + ' right=' + Math.round(r.right));
    }
  }
  return {over: over, culprits: culprits.slice(0, 4)};
}"""
# Tables not inside an element that scrolls sideways: a wider row would scroll the page.
UNWRAPPED_TABLES_JS = """() => Array.from(document.querySelectorAll('main table')).filter((table) => {
  for (let el = table.parentElement; el && el !== document.body; el = el.parentElement) {
    if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX)) return false;
  }
  return true;
}).length"""
# Pages on templates/base.html: the header's brand, name and links sit on one line.
HEADER_JS = """() => {
  const header = document.querySelector('header.topbar');
  if (!header) return null;
  const items = [header.querySelector('.brand'), ...header.querySelectorAll('nav > *')]
    .filter((el) => el && el.getClientRects().length);
  const rects = items.map((el) => el.getBoundingClientRect());
  const top = Math.min(...rects.map((r) => r.top));
  const bottom = Math.max(...rects.map((r) => r.bottom));
  const line = parseFloat(getComputedStyle(header).lineHeight) || 24;
  return bottom - top > line * 1.6 ? Math.round(bottom - top) : null;
}"""


# The page's links, and its GET forms submitted as they stand (a GET changes nothing).
LINKS_JS = """() => [
  ...Array.from(document.querySelectorAll('a[href]'), (a) => a.href),
  ...Array.from(document.querySelectorAll('form'))
    .filter((form) => form.method === 'get')
    .map((form) => {
      const url = new URL(form.action);
      url.search = new URLSearchParams(new FormData(form)).toString();
      return url.href;
    }),
]"""


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# Ids in a path: axe-core checks one page of each shape (one class page, not each).
ID = re.compile(r"(?<=/)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]+)(?=/)")


def _axe_serious(page: Any) -> list[tuple[str, str, list[str]]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"][0] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _framing_problem(path: str, headers: dict[str, str]) -> str:
    """Pages open inside the LMS iframe (CSP frame-ancestors lists settings.FRAME_ANCESTORS);
    sign-in and admin pages never do."""
    from tutoring_core.web.middleware import NEVER_FRAMED_PREFIXES

    policy = headers.get("content-security-policy", "")
    ancestors = next(
        (d.split()[1:] for d in policy.split(";") if d.strip().startswith("frame-ancestors")), None
    )
    if path.startswith(NEVER_FRAMED_PREFIXES):
        return "" if ancestors == ["'none'"] else f"may be framed ({policy!r})"
    if ancestors is None or "x-frame-options" in headers:
        return f"cannot open inside the LMS iframe ({policy!r}, {headers.get('x-frame-options')!r})"
    missing = [origin for origin in django_settings.FRAME_ANCESTORS if origin not in ancestors]
    return f"frame-ancestors lacks {missing}" if missing else ""


@dataclass
class Crawl:
    origin: str
    visited: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    variants: Counter[str] = field(default_factory=Counter)
    admin_objects: dict[str, set[str]] = field(default_factory=dict)
    seconds: float = 0.0
    axe_shapes: set[str] = field(default_factory=set)  # shared by every role's crawl

    def admit(self, url: str) -> str | None:
        """The link as the crawl keys it (path and query of this origin), or None to skip it."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            return None
        path = parts.path
        # In the admin, sort orders, filters and popups show the same page again.
        query = "" if path.startswith("/admin/") else parts.query
        key = path + (f"?{query}" if query else "")
        if key in self.seen or any(pattern.search(key) for pattern in SKIP):
            return None
        if (admin_object := re.match(r"^(/admin/[^/]+/[^/]+/)([^/]+)/.", path)) and admin_object[2] != "add":
            objects = self.admin_objects.setdefault(admin_object[1], set())
            if admin_object[2] not in objects and len(objects) >= ADMIN_OBJECTS_PER_MODEL:
                return None
            objects.add(admin_object[2])
        family = self._family(path, query)
        if family is not None:
            name, limit = family
            if self.variants[name] >= limit:
                return None
            self.variants[name] += 1
        self.seen.add(key)
        return key

    @staticmethod
    def _family(path: str, query: str) -> tuple[str, int] | None:
        """Pages alike enough that a few of them stand for all: (family, how many)."""
        app = re.fullmatch(r"/admin/([^/]+)/", path)
        if app and app[1] in {config.label for config in django_apps.get_app_configs()}:
            return "admin app index", ADMIN_APP_INDEXES  # the admin index cut to one app
        if path.startswith("/admin/") and path.endswith("/history/"):
            return "admin history", ADMIN_HISTORY_PAGES  # Django's own, the same for every model
        if query:
            return path, QUERY_VARIANTS_PER_PATH  # e.g. a week view's previous and next weeks
        return None


def _crawl(context: Any, origin: str, start: str, axe_shapes: set[str]) -> Crawl:
    from playwright.sync_api import Error as PlaywrightError

    crawl = Crawl(origin=origin, axe_shapes=axe_shapes)
    started = time.monotonic()
    queue = [key for key in [crawl.admit(origin + start)] if key]
    page = context.new_page()
    while queue and len(crawl.visited) < MAX_PAGES_PER_ROLE:
        key = queue.pop(0)
        url = origin + key
        try:
            response = page.goto(url, wait_until="load")
        except PlaywrightError as error:
            message = str(error)
            if "Download is starting" not in message and "net::ERR_HTTP_RESPONSE_CODE_FAILURE" not in message:
                # Chromium gave up on the page itself (its error page replaced the navigation):
                # a live-server connection dropped under load. Once more; a second failure raises.
                if "chrome-error://" not in message:
                    raise
                response = page.goto(url, wait_until="load")
            else:
                response = None
        if response is None:
            # A file (a calendar feed, an export) or an error with no body (a protocol
            # endpoint answering 405 to GET): its status is all there is to check.
            status = context.request.get(url, max_redirects=0).status
            crawl.visited.append(f"{key} (not a page, {status})")
            if status >= 500:
                crawl.problems.append(f"{key}: answered {status}")
            continue
        assert response is not None, url
        landed = urlunsplit(urlsplit(page.url)._replace(scheme="", netloc="", fragment=""))
        crawl.seen.add(landed)
        crawl.visited.append(key if landed == key else f"{key} -> {landed}")
        if response.status >= 500:
            crawl.problems.append(f"{key}: answered {response.status}")
            continue
        if response.status >= 400:
            crawl.visited[-1] += f" ({response.status})"
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        overflow = page.evaluate(OVERFLOW_JS)
        if overflow:
            crawl.problems.append(
                f"{landed}: scrolls sideways by {overflow['over']}px ({', '.join(overflow['culprits'])})"
            )
        for href in page.evaluate(LINKS_JS):
            next_key = crawl.admit(href.split("#", 1)[0])
            if next_key:
                queue.append(next_key)
        framing = _framing_problem(landed, response.headers)
        if framing:
            crawl.problems.append(f"{landed}: {framing}")
        if not page.locator("header.topbar").count():
            continue  # not built on templates/base.html (the admin site, a protocol page)
        header = page.evaluate(HEADER_JS)
        if header:
            crawl.problems.append(f"{landed}: the header takes more than one line ({header}px high)")
        if unwrapped := page.evaluate(UNWRAPPED_TABLES_JS):
            crawl.problems.append(f"{landed}: {unwrapped} table(s) outside a scrolling wrapper (.table-wrap)")
        shape = ID.sub("*", urlsplit(landed).path)
        if shape not in crawl.axe_shapes:
            crawl.axe_shapes.add(shape)
            for violation in _axe_serious(page):
                crawl.problems.append(f"{landed}: axe {violation}")
    page.close()
    crawl.seconds = time.monotonic() - started
    if queue:
        crawl.problems.append(f"stopped after {MAX_PAGES_PER_ROLE} pages with {len(queue)} left")
    return crawl


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(context: Any, origin: str, username: str, password: str) -> None:
    page = context.new_page()
    page.goto(origin + "/signin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.locator("form[method=post] button[type=submit]").click()
    assert urlsplit(page.url).path == "/", f"{username} did not land home: {page.url}"
    page.close()


@pytest.mark.browser
def test_every_page_every_demo_role_reaches_fits_360px(
    live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    from tutoring_core.web.demo import DEMO_PASSWORD, DEMO_SLUG, PEOPLE

    # Playwright's sync API runs an event loop in this thread; the ORM runs between its calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.DEMO_MODE = True
    settings.PUBLIC_BASE_URL = live_server.url
    call_command("demo_load", "--quiet-logins")

    # One person per role, in the demo's order: a new demo role is crawled too.
    people: dict[str, str] = {}
    for username, _first, _last, role in PEOPLE:
        people.setdefault(str(role), f"{username}@{DEMO_SLUG}")
    crawls: dict[str, Crawl] = {}
    axe_shapes: set[str] = set()  # axe-core checks one page of each shape, whoever reaches it first
    for role, username in [("anonymous", ""), *people.items()]:
        context = browser.new_context(viewport=VIEWPORT)
        try:
            if username:
                _sign_in(context, live_server.url, username, DEMO_PASSWORD)
            crawls[f"{role} ({username})" if username else role] = _crawl(
                context, live_server.url, "/", axe_shapes
            )
        finally:
            context.close()

    lines = []
    for who, crawl in crawls.items():
        lines.append(f"{who}: {len(crawl.visited)} pages ({crawl.seconds:.0f} s)")
        lines.extend(f"  {url}" for url in crawl.visited)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))  # the list the lead puts in the closing note

    # Every role saw more than its home page, and the admin saw the admin site.
    assert all(len(crawl.visited) > 1 for crawl in crawls.values()), {w: c.visited for w, c in crawls.items()}
    admin = next(crawl for who, crawl in crawls.items() if who.startswith("district_admin"))
    assert any(url.startswith("/admin/accounts/user/") for url in admin.visited), admin.visited
    problems = [f"{who}: {problem}" for who, crawl in crawls.items() for problem in crawl.problems]
    assert problems == [], "\n".join(problems)


def test_the_crawl_stays_on_the_site_and_bounded() -> None:
    crawl = Crawl(origin="http://localhost:8000")
    assert crawl.admit("http://localhost:8000/") == "/"
    assert crawl.admit("http://localhost:8000/") is None  # seen
    assert crawl.admit("https://localhost:8000/classes/") is None  # another origin
    assert crawl.admit("http://lms.example/") is None
    assert crawl.admit("http://localhost:8000/signout/") is None
    assert crawl.admit("http://localhost:8000/admin/logout/") is None
    assert crawl.admit("http://localhost:8000/admin/classes/class/7/delete/") is None
    assert crawl.admit("http://localhost:8000/lti/demo/?as=teacher&message=deeplink") is None
    assert crawl.admit("http://localhost:8000/lti/demo/?placement=3") == "/lti/demo/?placement=3"
    # Admin: filters and sort orders are the list again; one object per model list.
    assert crawl.admit("http://localhost:8000/admin/classes/class/?o=2") == "/admin/classes/class/"
    assert crawl.admit("http://localhost:8000/admin/classes/class/add/") == "/admin/classes/class/add/"
    assert (
        crawl.admit("http://localhost:8000/admin/classes/class/7/change/") == "/admin/classes/class/7/change/"
    )
    assert (
        crawl.admit("http://localhost:8000/admin/classes/class/7/history/")
        == "/admin/classes/class/7/history/"
    )
    assert crawl.admit("http://localhost:8000/admin/classes/class/8/change/") is None
    assert (
        crawl.admit("http://localhost:8000/admin/classes/term/8/change/") == "/admin/classes/term/8/change/"
    )
    apps = [
        crawl.admit(f"http://localhost:8000/admin/{app}/") for app in ("accounts", "sso", "lti_tool", "scorm")
    ]
    assert apps == ["/admin/accounts/", "/admin/sso/", "/admin/lti_tool/", None]
    assert crawl.admit("http://localhost:8000/admin/password_change/") == "/admin/password_change/"
    histories = [crawl.admit(f"http://localhost:8000/admin/classes/{m}/1/history/") for m in "abc"]
    assert histories == ["/admin/classes/a/1/history/", None, None]  # class/7 was the first
    # A page with a query (a week view) is crawled in a few variants, not forever.
    weeks = [crawl.admit(f"http://localhost:8000/scheduling/week/?week={n}") for n in range(5)]
    assert weeks == [
        "/scheduling/week/?week=0",
        "/scheduling/week/?week=1",
        "/scheduling/week/?week=2",
        None,
        None,
    ]
