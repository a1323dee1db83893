"""Google Classroom as a roster source: courses, teachers, students and (where the
domain has granted it) guardians, read through the Classroom REST API v1.

Authentication is a service account with domain-wide delegation: a JWT bearer grant
(RFC 7523) signed RS256 with the account's key, impersonating a Workspace admin.
Paging follows ``nextPageToken``. Quotas: requests are rate limited per connection
and 429/5xx are retried with Retry-After or backoff (shared with the OneRoster client).

Records come out in the same shape as OneRoster's, so the same pipeline stages,
diffs and applies them: a course is a class, its teachers and students are users
with enrollments, guardians are users linked to their students (agent records).
Classroom has no schools or terms, so those references are simply absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt

from oneroster.protocol.records import Record, check_record
from oneroster.protocol.rest import RateLimiter, RestFetchError, Transport, _retry_after

SCOPES = (
    "https://www.googleapis.com/auth/classroom.courses.readonly",
    "https://www.googleapis.com/auth/classroom.rosters.readonly",
    "https://www.googleapis.com/auth/classroom.profile.emails",
    "https://www.googleapis.com/auth/classroom.guardianlinks.students.readonly",
)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
VERSION = "classroom"


class BearerAuth:
    """A requests auth that adds the access token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class ClassroomClient:
    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        client_email: str,
        private_key: str,
        subject: str,
        transport: Transport,
        page_size: int = 100,
        requests_per_second: float = 5.0,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.root = base_url.rstrip("/") + "/v1"
        self.token_url = token_url
        self.client_email = client_email
        self.private_key = private_key
        self.subject = subject
        self.transport = transport
        # Classroom caps pageSize (courses at 1000, rosters at 100 today); ask within it.
        self.page_size = max(1, min(page_size, 100))
        self.max_retries = max_retries
        self.sleep = sleep
        self.limiter = RateLimiter(requests_per_second, sleep)
        self._token: tuple[str, float] | None = None
        self.guardians_granted = True

    def close(self) -> None:
        pass

    def _access_token(self) -> str:
        if self._token and self._token[1] > time.time() + 60:
            return self._token[0]
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": self.client_email, "sub": self.subject, "scope": " ".join(SCOPES), "aud": self.token_url,
             "iat": now, "exp": now + 3600},
            self.private_key,
            algorithm="RS256",
        )  # fmt: skip
        response = self.transport.post(
            self.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}, auth=None
        )
        if response.status_code >= 400:
            raise RestFetchError(
                f"{self.token_url}: token request refused (HTTP {response.status_code}): {response.text[:200]}",
                transient=response.status_code == 429 or response.status_code >= 500,
            )
        body = response.json()
        if not isinstance(body, dict) or "access_token" not in body:
            raise RestFetchError(f"{self.token_url}: no access_token in the answer.", transient=False)
        self._token = (str(body["access_token"]), time.time() + float(body.get("expires_in", 3600)))
        return self._token[0]

    def _get(self, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        url = f"{self.root}/{path}"
        attempt = 0
        while True:
            self.limiter.wait()
            try:
                response = self.transport.get(
                    url,
                    params=params,
                    headers={"Accept": "application/json"},
                    auth=BearerAuth(self._access_token()),
                )
            except RestFetchError:
                raise
            except Exception as exc:  # the transport's network error
                if getattr(exc, "transient", True) is False:
                    raise RestFetchError(f"{url}: {exc}", transient=False) from exc
                status, wait, reason = None, None, str(exc)
            else:
                if response.status_code < 400:
                    return response.status_code, response.json()
                status, reason = response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"
                wait = _retry_after(response.headers.get("Retry-After"))
                if status == 401 and attempt == 0:
                    self._token = None
                    attempt += 1
                    continue
                if status == 403 and "/guardians" in path:
                    return status, None  # the domain has not granted guardian access
                if status != 429 and status < 500:
                    raise RestFetchError(f"{url}: {reason}", transient=False)
            attempt += 1
            if attempt > self.max_retries:
                raise RestFetchError(f"{url}: gave up after {attempt} attempts ({reason})", transient=True)
            self.sleep(min(60.0, wait if wait is not None else 0.5 * 2 ** (attempt - 1)))

    def _list(self, path: str, key: str, extra: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            params: dict[str, Any] = {"pageSize": self.page_size, **(extra or {})}
            if token:
                params["pageToken"] = token
            _status, body = self._get(path, params)
            if body is None:
                return
            if not isinstance(body, dict):
                raise RestFetchError(f"{self.root}/{path}: the answer is not a JSON object.", transient=False)
            # Classroom leaves the list out when it is empty; that is not an error.
            items = body.get(key, [])
            if not isinstance(items, list):
                raise RestFetchError(f"{self.root}/{path}: {key!r} is not a list.", transient=False)
            yield from items
            token = str(body.get("nextPageToken") or "")
            if not token:
                return

    def records(self, *, since: Any = None) -> Iterator[Record]:
        """Every course, then each course's people; users once each (the first time seen)."""
        seen_users: set[str] = set()
        courses = list(self._list("courses", "courses", {"courseStates": "ACTIVE"}))
        for course in courses:
            yield _record("class", str(course.get("id") or ""), {
                "title": str(course.get("name") or ""), "classCode": str(course.get("section") or ""),
                "classType": "", "course": "", "school": "", "terms": [],
            }, "courses")  # fmt: skip
        students: list[str] = []
        for course in courses:
            cid = str(course.get("id") or "")
            for role, key in (("teacher", "teachers"), ("student", "students")):
                location = f"courses/{cid}/{key}"
                for member in self._list(location, key):
                    uid = str(member.get("userId") or "")
                    if uid and uid not in seen_users:
                        seen_users.add(uid)
                        yield _user(uid, member.get("profile") or {}, location)
                        yield _record(
                            "role",
                            f"{uid}|{role}",
                            {"user": uid, "role": role, "org": "", "roleType": "primary"},
                            location,
                        )
                        if role == "student":
                            students.append(uid)
                    yield _record("enrollment", f"{cid}|{uid}|{role}", {
                        "class": cid, "user": uid, "school": "", "role": role, "primary": role == "teacher",
                        "beginDate": "", "endDate": "",
                    }, location)  # fmt: skip
        for student in students:
            location = f"userProfiles/{student}/guardians"
            for link in self._list(location, "guardians"):
                gid = str(link.get("guardianId") or "")
                if not gid:
                    continue
                if gid not in seen_users:
                    seen_users.add(gid)
                    profile = link.get("guardianProfile") or {}
                    if not profile.get("emailAddress") and link.get("invitedEmailAddress"):
                        profile = {**profile, "emailAddress": link["invitedEmailAddress"]}
                    yield _user(gid, profile, location)
                    yield _record(
                        "role",
                        f"{gid}|guardian",
                        {"user": gid, "role": "guardian", "org": "", "roleType": "primary"},
                        location,
                    )
                yield _record("agent", f"{student}|{gid}", {"user": student, "agent": gid}, location)


def _record(entity: str, sid: str, data: dict[str, Any], location: str) -> Record:
    return check_record(
        Record(entity=entity, sourced_id=sid, status="active", data=data, location=location), version=VERSION
    )


def _user(uid: str, profile: dict[str, Any], location: str) -> Record:
    name = profile.get("name") or {}
    given, family = str(name.get("givenName") or ""), str(name.get("familyName") or "")
    if not (given or family):
        given = str(name.get("fullName") or uid)
    return _record("user", uid, {
        "givenName": given, "familyName": family, "middleName": "", "email": str(profile.get("emailAddress") or ""),
        "username": "", "identifier": "", "enabledUser": True,
    }, location)  # fmt: skip
