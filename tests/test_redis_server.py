"""The throwaway ``redis-server`` the local stack and the tests start, stop and kill by pid."""

from __future__ import annotations

import os

import redis

from hitl_bus.redis_server import RedisServer


def test_start_answer_stop() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        pid = server.pid
        assert pid is not None
        client.close()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_a_kill_9_and_restart_keeps_what_the_aof_holds() -> None:
    with RedisServer(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("answer", "42")
        client.close()
        old_pid = server.pid
        server.kill_and_restart()
        assert server.pid != old_pid
        client = redis.Redis.from_url(server.url)  # the same port
        assert client.get("answer") == b"42"
        client.close()
