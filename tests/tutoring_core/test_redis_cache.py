"""The Redis cache backend (tutoring_core.redis_cache) against the Redis server on
loopback, its own database: Django's behaviour, one client object per pool, and a
forked process (a gunicorn or Celery worker) that uses it after the fork."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from tutoring_core.redis_cache import RedisCache

LOCATION = "redis://127.0.0.1:6379/11"


def _cache() -> RedisCache:
    return RedisCache(LOCATION, {"KEY_PREFIX": f"redis-cache-test-{uuid.uuid4().hex[:8]}"})


def test_behaves_as_djangos_backend() -> None:
    cache = _cache()
    assert isinstance(cache, DjangoRedisCache)
    cache.set("state", {"nonce": "n-1", "n": 3}, 30)
    assert cache.get("state") == {"nonce": "n-1", "n": 3}
    assert cache.add("state", "other", 30) is False
    assert cache.add("nonce-used", 1, 30) is True
    assert cache.add("nonce-used", 1, 30) is False
    assert cache.incr("nonce-used") == 2
    assert cache.get_many(["state", "missing"]) == {"state": {"nonce": "n-1", "n": 3}}
    assert cache.delete("state") is True
    assert cache.delete("state") is False
    assert cache.get("state", "gone") == "gone"


def test_one_client_object_serves_every_call_and_thread() -> None:
    cache = _cache()
    client = cache._cache.get_client("a")
    assert cache._cache.get_client("b", write=True) is client
    added: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        added.append(cache.add("once", 1, 30))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(added) == [False] * 7 + [True]
    assert cache._cache.get_client() is client


def _child(cache: RedisCache, conn: object) -> None:
    cache.set("from-child", "hello", 30)
    conn.send(cache.get("from-parent"))  # type: ignore[attr-defined]


def test_a_forked_process_uses_the_shared_client_on_connections_of_its_own() -> None:
    cache = _cache()
    cache.set("from-parent", "hi", 30)  # the parent's pool holds a connection now
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child, args=(cache, sender))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert receiver.recv() == "hi"
    assert cache.get("from-child") == "hello"
    assert cache.get("from-parent") == "hi"  # the parent's connection still works
