"""Django's Redis cache backend, with one client object per connection pool.

Django's RedisCacheClient builds a new ``redis.Redis`` for every cache call; in
redis-py 8 that constructor sets up its response callbacks each time, which cost
more CPU than the GET itself on the LTI launch's hot path (three cache calls per
launch: the login's state, the launch's state and its nonce). A client is safe to
share across threads (it takes connections from its pool), and the pool itself
starts over in a forked process, so one client per pool is kept.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        # The stubs do not know RedisCacheClient's private helpers (Django 5.2 has them).
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient
