"""A district to call the API in, and a client that sends a person's bearer token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client

from tests.scheduling.factories import NOW, World, make_world
from tutoring_core.accounts.models import User
from tutoring_core.apiauth.services import token_create


class ApiClient:
    """Django's test client with ``Authorization: Bearer <token>`` and JSON bodies."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.client = Client()

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        return sent

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def send(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        data = "" if body is None else json.dumps(body)
        return getattr(self.client, method.lower())(
            path, data, content_type="application/json", headers=self._headers(headers)
        )

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.send("post", path, body, headers)

    def put(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.send("put", path, body, headers)


def client_for(person: User) -> ApiClient:
    return ApiClient(token_create(person=person).token)


@pytest.fixture
def world(db: Any) -> World:
    return make_world()


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller
