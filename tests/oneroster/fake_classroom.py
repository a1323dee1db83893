"""A loopback fake of the Google Classroom REST API v1 (no real peer exists).

It checks the service account's JWT bearer assertion (RS256, audience, scopes) with
PyJWT against the public key the test made, issues bearer tokens, and serves
courses, teachers, students and guardians with nextPageToken paging.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jwt

from oneroster.protocol.classroom import JWT_BEARER, SCOPES


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _person(uid: str, given: str, family: str) -> dict[str, Any]:
    return {"id": uid, "name": {"givenName": given, "familyName": family, "fullName": f"{given} {family}"},
            "emailAddress": f"{given.lower()}.{family.lower()}@school.example"}  # fmt: skip


@dataclass
class ClassroomData:
    courses: list[dict[str, Any]] = field(default_factory=list)
    teachers: dict[str, list[str]] = field(default_factory=dict)
    students: dict[str, list[str]] = field(default_factory=dict)
    guardians: dict[str, list[str]] = field(default_factory=dict)
    people: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def sample(cls, n_courses: int = 3, per_course: int = 12) -> ClassroomData:
        data = cls()
        for c in range(n_courses):
            cid = f"{7000 + c}"
            data.courses.append(
                {"id": cid, "name": f"Biology {c + 1}", "section": f"P{c + 1}", "courseState": "ACTIVE"}
            )
            teacher = f"t{c}"
            data.people[teacher] = _person(teacher, "Tess", f"Teacher{c}")
            data.teachers[cid] = [teacher]
            # Students overlap between courses: student s{k} is in courses k % n and (k + 1) % n.
            data.students[cid] = []
        for k in range(per_course * n_courses // 2):
            sid = f"s{k}"
            data.people[sid] = _person(sid, "Sam", f"Student{k}")
            for c in (k % n_courses, (k + 1) % n_courses):
                data.students[f"{7000 + c}"].append(sid)
            if k % 2 == 0:
                gid = f"g{k}"
                data.people[gid] = _person(gid, "Gale", f"Guardian{k}")
                data.guardians[sid] = [gid]
        return data


class FakeClassroom:
    def __init__(self, data: ClassroomData, *, public_key: Any, client_email: str, subject: str) -> None:
        self.data = data
        self.public_key = public_key
        self.client_email = client_email
        self.subject = subject
        self.guardians_granted = True
        self.too_many: dict[str, int] = {}
        self.tokens: set[str] = set()
        self.log: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None

    def __enter__(self) -> FakeClassroom:
        self._server = make_server("127.0.0.1", 0, self.app, server_class=_Server, handler_class=_Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        status, headers, body = self._handle(environ, path)
        with self._lock:
            self.log.append((path, status))
        start_response(f"{status} X", [("Content-Type", "application/json"), *headers])
        return [json.dumps(body).encode()]

    def _handle(self, environ: dict[str, Any], path: str) -> tuple[int, list[tuple[str, str]], Any]:
        if path == "/token":
            form = {
                k: v[0]
                for k, v in parse_qs(
                    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
                ).items()
            }
            if form.get("grant_type") != JWT_BEARER:
                return 400, [], {"error": "unsupported_grant_type"}
            try:
                claims = jwt.decode(
                    form.get("assertion", ""), self.public_key, algorithms=["RS256"], audience=self.token_url
                )
            except jwt.PyJWTError as exc:
                return 400, [], {"error": "invalid_grant", "error_description": str(exc)}
            if claims.get("iss") != self.client_email or claims.get("sub") != self.subject:
                return 401, [], {"error": "unauthorized_client"}
            if not set(SCOPES) <= set(str(claims.get("scope", "")).split()):
                return 400, [], {"error": "invalid_scope"}
            token = secrets.token_urlsafe(16)
            self.tokens.add(token)
            return 200, [], {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, [], {"error": {"code": 401, "status": "UNAUTHENTICATED"}}
        with self._lock:
            for prefix, left in self.too_many.items():
                if left > 0 and path.startswith(prefix):
                    self.too_many[prefix] -= 1
                    return (
                        429,
                        [("Retry-After", "0")],
                        {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}},
                    )
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "courses"] and len(parts) == 2:
            return self._page("courses", self.data.courses, params)
        if parts[:2] == ["v1", "courses"] and len(parts) == 4 and parts[3] in ("teachers", "students"):
            members = getattr(self.data, parts[3]).get(parts[2], [])
            items = [
                {"courseId": parts[2], "userId": uid, "profile": self.data.people[uid]} for uid in members
            ]
            return self._page(parts[3], items, params)
        if parts[:2] == ["v1", "userProfiles"] and len(parts) == 4 and parts[3] == "guardians":
            if not self.guardians_granted:
                return 403, [], {"error": {"code": 403, "status": "PERMISSION_DENIED"}}
            items = [{"studentId": parts[2], "guardianId": gid, "guardianProfile": self.data.people[gid]}
                     for gid in self.data.guardians.get(parts[2], [])]  # fmt: skip
            return self._page("guardians", items, params)
        return 404, [], {"error": {"code": 404}}

    def _page(
        self, key: str, items: list[Any], params: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], Any]:
        size = min(int(params.get("pageSize", "30")), 100)
        start = int(params.get("pageToken") or 0)
        body: dict[str, Any] = {}
        if items[start : start + size]:
            body[key] = items[start : start + size]  # Classroom omits empty lists
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return 200, [], body
