"""The Redis channel layer as configured for production keeps idle and busy video sockets
alive and their messages whole: its connections read for longer than a consumer's blocking
wait, its pool does not run out at redis-py 8's default of 100, and a process's shared channel
holds more than 100 messages (bench/video.py --redis found each losing signaling).
Read from the real settings module with REDIS_URL set, in a child process (settings are read
once per process); no Redis server is needed, the pool is only built, never connected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from channels_redis.core import RedisChannelLayer

ROOT = Path(__file__).resolve().parents[2]
SHOW = "from django.conf import settings; import json; print(json.dumps(settings.CHANNEL_LAYERS))"


def _layers(redis_url: str | None) -> dict[str, object]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    env.pop("REDIS_URL", None)
    env.pop("PYTEST_XDIST_WORKER", None)  # the child is not a worker: REDIS_URL stays as given
    if redis_url:
        env["REDIS_URL"] = redis_url
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + SHOW],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_redis_layer_reads_longer_than_it_waits_and_has_room_for_bursts() -> None:
    config = _layers("redis://127.0.0.1:6379/5")["default"]
    assert isinstance(config, dict)
    assert config["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    layer = RedisChannelLayer(**config["CONFIG"])
    pool = layer.create_pool(0)
    assert pool.connection_kwargs["host"] == "127.0.0.1"
    assert pool.connection_kwargs["db"] == 5
    assert pool.connection_kwargs["socket_timeout"] == 15
    assert pool.connection_kwargs["socket_timeout"] > layer.brpop_timeout
    assert pool.max_connections == 2000
    # One process's consumers share one channel: a busy process must not overflow it.
    assert layer.capacity == 5000


def test_without_redis_the_layer_is_in_memory() -> None:
    assert _layers(None) == {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
