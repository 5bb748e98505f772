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

from hitl_bus import (
    HitlClient,
    get_client,
    keys,
    resume_flow_run,
    run_deployment,
    send_input,
    start_flow_run,
)
from hitl_bus.deployments import read_deployment
from hitl_bus.errors import ResumeRejected
from tests.helpers import eventually

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


DEV = [sys.executable, "-m", "hitl_bus.cli", "dev"]


def test_greeter_chat_through_the_cli_dev_command_with_embedded_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HITL_BUS_REDIS_URL"}
    out = subprocess.run(
        [*DEV, "--port", "0", "--", sys.executable, "examples/greeter_chat.py"],
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


def test_approval_example(real_redis_url: str) -> None:
    out = run_example("examples/approval.py", real_redis_url)
    lines = out.stdout.splitlines()
    assert lines[0] == "### Expense request from Ada: $1,250.00"
    assert "- **Policy:** [expense policy](https://example.com/finance/expense-policy)" in lines
    assert "Approved amount [1250.0]: Lower it to approve part of the request; " in out.stdout
    assert "Pay out via [payroll]: How the approved money reaches the requester." in lines
    refused = next(line for line in lines if line.startswith("refused:"))
    assert "approved_amount" in refused  # over the amount asked: the form's schema says no
    assert lines[-2:] == [
        "Approved $1,000.00 of $1,250.00 for Ada by Grace (payout: bank-transfer)",
        "run Completed",
    ]


async def test_approval_asks_again_when_a_rejection_has_no_reason(real_redis_url: str) -> None:
    from examples.approval import expense_approval

    client: HitlClient = get_client()
    run = await start_flow_run(expense_approval, amount=80.0, requester="Linus", purpose="Books")
    run_id = str(run.id)
    await client.wait_for_flow_run(run_id, lambda s: s.is_paused(), timeout=10)
    pause = await client.read_pause(run_id)
    assert pause is not None and pause.schema_ is not None and pause.description is not None
    assert "> Books" in pause.description and "$80.00" in pause.description
    amount = pause.schema_["properties"]["approved_amount"]["anyOf"][0]
    assert (amount["minimum"], amount["maximum"]) == (0, 80.0)  # capped at what was asked
    assert pause.defaults == {"approved_amount": 80.0, "payout": "payroll", "comment": ""}
    assert pause.schema_["required"] == ["approved", "approver"]
    with pytest.raises(ResumeRejected):
        await resume_flow_run(run_id, {"approved": True, "approver": ""})  # min_length=1

    await resume_flow_run(run_id, {"approved": False, "approver": "Grace"})
    again = await client.wait_for_flow_run(
        run_id, lambda s: s.is_paused() and s.state_details.pause_key == "2", timeout=10
    )
    assert "why the request is rejected" in (again.state.message or "")
    await resume_flow_run(run_id, {"approved": False, "approver": "Grace", "comment": "No budget"})
    assert (await client.wait_for_flow_run(run_id, timeout=10)).state.is_completed()
    messages = [r["message"] for r in await client.read_logs(run_id)]
    assert "Decision refused: Say in the comment why the request is rejected." in messages
    assert "Rejected $80.00 for Linus by Grace: No budget" in messages


def test_monitoring_example(real_redis_url: str) -> None:
    out = run_example("examples/monitoring.py", real_redis_url)
    lines = out.stdout.splitlines()
    assert lines[:2] == [
        "sending: latency threshold 100 ms",
        "Threshold for latency is now 100 (was 500): tighter SLO",
    ]
    assert lines[2].startswith("ALERT: latency at ")
    assert lines[2].endswith(" ms is above its threshold 100 ms")
    assert lines[3].startswith("Done: 12 checks, ") and lines[-1] == "run Completed"


async def test_monitor_takes_each_update_as_it_arrives_without_waiting(
    real_redis_url: str,
) -> None:
    """One ``timeout=0`` receiver, asked every check: empty reads do not end it."""
    from examples.monitoring import ThresholdUpdate, monitor

    client: HitlClient = get_client()
    run = await start_flow_run(monitor, checks=100_000, interval=0.01)
    run_id = str(run.id)

    async def logs() -> list[str]:
        return [record["message"] for record in await client.read_logs(run_id)]

    async def logged(prefix: str) -> None:
        async def seen() -> bool:
            return any(m.startswith(prefix) for m in await logs())

        await eventually(seen)

    await logged("Check 3/")  # several empty reads first
    await send_input(ThresholdUpdate(metric="cpu", threshold=40), flow_run_id=run_id)
    await logged("Threshold for cpu is now 40 (was 90)")
    await logged("ALERT: cpu at ")
    invalid = ThresholdUpdate.model_construct(metric="memory", threshold=150.0, reason="")
    await send_input(invalid, flow_run_id=run_id)  # passes here, fails the run's validator
    update = ThresholdUpdate(metric="cpu", threshold=95, reason="too noisy")
    await send_input(update, flow_run_id=run_id)
    await logged("Threshold for cpu is now 95 (was 40): too noisy")
    await client.cancel_flow_run(run_id)
    assert (await client.wait_for_flow_run(run_id, timeout=10)).state.is_cancelled()

    messages = await logs()
    raised = messages.index("Threshold for cpu is now 95 (was 40): too noisy")
    ignored = [i for i, m in enumerate(messages) if m.startswith("Ignored a threshold update:")]
    assert len(ignored) == 1 and ignored[0] < raised
    assert "memory is a percentage" in messages[ignored[0]]
    assert not any(m.startswith("ALERT: cpu") for m in messages[raised:])


@pytest.fixture
def examples_worker(real_redis_url: str) -> Iterator[list[str]]:
    """The worker serving the examples' deployments (as `python -m workers.examples`)."""
    from workers.examples import DEPLOYMENTS

    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url, "HITL_BUS_LOG_TO_STDERR": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "workers.examples"], cwd=ROOT, env=env)
    client = redis.Redis.from_url(real_redis_url)
    for _ in range(300):
        if all(client.hexists(keys.DEPLOYMENTS, name) for name in DEPLOYMENTS):
            break
        time.sleep(0.05)
    client.close()
    yield DEPLOYMENTS
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0


async def test_examples_worker_runs_each_deployment_without_parameters(
    examples_worker: list[str],
) -> None:
    from examples.monitoring import ThresholdUpdate

    assert examples_worker == [
        "shirt/order",
        "expense-approval/default",
        "monitor/default",
        "resumable/default",
    ]
    for name in examples_worker:  # a Start button sends no parameters
        assert (await read_deployment(name)).required == []
    client: HitlClient = get_client()
    runs = {name: str((await run_deployment(name, timeout=0)).id) for name in examples_worker}

    async def answer(name: str, run_input: dict[str, object] | None = None) -> None:
        await client.wait_for_flow_run(runs[name], lambda s: s.is_paused(), timeout=10)
        await resume_flow_run(runs[name], run_input)

    await answer("shirt/order", {"size": "large", "color": "black"})
    await answer("expense-approval/default", {"approved": True, "approver": "Grace"})
    await answer("resumable/default")  # suspended: resuming queues it for the worker again
    monitor_id = runs["monitor/default"]
    await send_input(ThresholdUpdate(metric="latency", threshold=100), flow_run_id=monitor_id)

    async def alerted() -> bool:
        return any(r["message"].startswith("ALERT") for r in await client.read_logs(monitor_id))

    await eventually(alerted)  # the next check (a second apart) applies the new threshold
    await client.cancel_flow_run(monitor_id)  # ten minutes is too long to wait

    final = {
        name: (await client.wait_for_flow_run(run_id, timeout=10)).state.name
        for name, run_id in runs.items()
    }
    assert final == {
        "shirt/order": "Completed",
        "expense-approval/default": "Completed",
        "monitor/default": "Cancelled",
        "resumable/default": "Completed",
    }
    approval_logs = [r["message"] for r in await client.read_logs(runs["expense-approval/default"])]
    assert "Approved $1,250.00 of $1,250.00 for Ada by Grace (payout: payroll)" in approval_logs
