"""Every example runs as its README says (on a real redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from hitl_bus import keys

ROOT = Path(__file__).resolve().parent.parent


def run_example(path: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """Run one example script to its end against ``redis_url``; it must succeed."""
    env = {**os.environ, "HITL_BUS_REDIS_URL": redis_url, "HITL_BUS_LOG_TO_STDERR": "0"}
    out = subprocess.run(
        [sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture
def chat_worker(real_redis_url: str) -> Iterator[None]:
    """The worker serving the chat's greeter deployment (as `python -m workers.chat`)."""
    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url, "HITL_BUS_LOG_TO_STDERR": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "workers.chat"], cwd=ROOT, env=env)
    client = redis.Redis.from_url(real_redis_url)
    for _ in range(300):
        if client.hexists(keys.DEPLOYMENTS, "greeter/send-receive"):
            break
        time.sleep(0.05)
    client.close()
    yield
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


@pytest.mark.usefixtures("chat_worker")
def test_greeter_chat_scripted(real_redis_url: str) -> None:
    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url}
    out = subprocess.run(
        [sys.executable, "examples/greeter_chat.py"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["Hello, Ada!", "Hello, Grace!", "Hello, Linus!"]


def test_greeter_chat_through_the_cli_dev_command_with_embedded_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HITL_BUS_REDIS_URL"}
    out = subprocess.run(
        [sys.executable, "-m", "hitl_bus.cli", "dev"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Embedded Redis" in out.stderr and "redis://127.0.0.1:" in out.stderr
    assert "Hello, Linus!" in out.stdout


@pytest.mark.usefixtures("chat_worker")
@pytest.mark.parametrize("name", ["Ada"])
def test_chat_at_a_terminal_reads_names_until_quit(real_redis_url: str, name: str) -> None:
    import pty

    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url}
    pid, fd = pty.fork()
    if pid == 0:  # child: the chat on a terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "examples/greeter_chat.py"], env)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            chunk = os.read(fd, 1024)
            if not chunk:
                raise AssertionError(f"terminal closed before {marker!r}: {seen!r}")
            seen += chunk

    read_until(b"What is your name?")
    os.write(fd, f"{name}\n".encode())
    read_until(f"Hello, {name}!".encode())
    read_until(b"What is your name?")
    os.write(fd, b"q\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_shirt_order_example(real_redis_url: str) -> None:
    out = run_example("examples/shirt_order.py", real_redis_url)
    assert "paused again: Input rejected:" in out.stdout
    assert "Green is only in stock" in out.stdout
    assert out.stdout.strip().endswith("run Completed")


def test_suspend_resume_example(real_redis_url: str) -> None:
    out = run_example("examples/suspend_resume.py", real_redis_url)
    assert out.stdout.splitlines() == [
        "handled first",
        "handled second",
        "suspended; sending one more and resuming",
        "handled third",  # first and second were excluded after the re-execution
        "run Completed",
        "seen keys: 3",
    ]
