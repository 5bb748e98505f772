"""A local 3-master Redis Cluster for the whole session, and the per-test ``cluster_url``.

The session fixture starts three ``redis-server`` nodes on loopback, joins them with
``redis-cli --cluster create`` (about two seconds) and stops them after. It starts once,
for the first test that needs it: the Cluster-specific tests (``test_cluster.py``) and the
``cluster`` variant of the shared scenarios (``bus_url`` on tests marked ``also_on_cluster``).
Without ``redis-server`` or ``redis-cli`` those tests are skipped, except in CI.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis

from hitl_bus.redis_server import RedisServer, find_redis_server


def _tools_missing() -> bool:
    try:
        find_redis_server()
    except FileNotFoundError:
        return True
    return shutil.which("redis-cli") is None and not os.path.isfile("/usr/bin/redis-cli")


def _redis_cli() -> str:
    return shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000, so at most 55535) is free too."""
    while True:
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def on_node(port: int, *command: str) -> Any:
    """One command on one node, over a connection of its own."""
    with redis.Redis(port=port, protocol=2) as client:
        return client.execute_command(*command)


def start_cluster(
    stack: ExitStack, masters: int, replicas: int = 0, node_timeout_ms: int = 5000
) -> list[RedisServer]:
    """Start ``masters * (1 + replicas)`` nodes on loopback and join them into one Cluster.

    The nodes stop when ``stack`` closes. Returns them once ``redis-cli`` has created the
    Cluster (its state may still be settling: callers wait for what they need).
    """
    if _tools_missing() and os.environ.get("CI") != "true":
        pytest.skip("redis-server or redis-cli missing")
    nodes = []
    for _ in range(masters * (1 + replicas)):
        port = _cluster_port()
        server = RedisServer(
            port=port,
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                "--repl-diskless-sync-delay", "0",
            ],
        )  # fmt: skip
        nodes.append(stack.enter_context(server))
    subprocess.run(
        [
            _redis_cli(), "--cluster", "create",
            *[f"127.0.0.1:{n.port}" for n in nodes],
            "--cluster-replicas", str(replicas), "--cluster-yes",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return nodes


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[list[RedisServer]]:
    """Three masters holding all 16384 slots between them."""
    with ExitStack() as stack:
        nodes = start_cluster(stack, masters=3)
        deadline = time.monotonic() + 30
        while not all(on_node(n.port, "CLUSTER INFO")["cluster_state"] == "ok" for n in nodes):
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.05)
        yield nodes


@pytest.fixture
def cluster_url(redis_cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch) -> str:
    """The flushed cluster, configured as the bus for this test."""
    for node in redis_cluster:
        on_node(node.port, "FLUSHALL")
    url = f"redis+cluster://127.0.0.1:{redis_cluster[0].port}/"
    monkeypatch.setenv("HITL_BUS_REDIS_URL", url)
    return url
