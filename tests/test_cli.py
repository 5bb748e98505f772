"""The ``hitl-bus`` command line, one group of tests per command.

Commands that only talk to Redis run in-process through typer's ``CliRunner``;
``dev``, ``web`` and ``worker`` run as real processes, since signals, ports and
child processes are what they are about. Every wait is bounded generously.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
import redis
from typer.testing import CliRunner

from hitl_bus import (
    __version__,
    flow,
    get_client,
    get_run_logger,
    pause_flow_run,
    receive_input,
    resume_flow_run,
    start_flow_run,
)
from hitl_bus import keys as key_names
from hitl_bus.bus import get_bus
from hitl_bus.cli import app
from hitl_bus.deployments import register
from hitl_bus.devstack import redact_url
from hitl_bus.engine import create_flow_run
from hitl_bus.engine.states import State, StateType
from hitl_bus.redis_server import RedisServer
from tests import worker_flows
from tests.helpers import eventually
from tests.models import ShirtOrder

ROOT = Path(__file__).resolve().parent.parent
LOGIN_LINE = re.compile(r"open (http://\S+)/login\?token=(\S+)")
runner = CliRunner()


# --- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(base_url: str, token: str | None = None) -> httpx.Client:
    """A client for a server of the test (never through a proxy from the environment)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, trust_env=False, timeout=10)


def wait_healthy(base_url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with http(base_url) as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the server exited with {proc.returncode}"
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{base_url}/healthz did not answer within {timeout} s")


class Lines:
    """A process's stdout, read on a thread so that waiting for a line has a bound."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matched within {timeout} s: {self.seen}") from None
            if line is None:
                raise AssertionError(f"output ended without a match: {self.seen}")
            self.seen.append(line)
            match = pattern.search(line)
            if match:
                return match


def session_members(sid: int) -> dict[int, str]:
    """Live processes of session ``sid`` by pid (Linux ``/proc``; elsewhere none are seen)."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            members[int(stat.parent.name)] = cmdline
    return members


def cli_process(*args: str) -> list[str]:
    """The argv that runs ``hitl-bus ARGS`` with this interpreter."""
    return [sys.executable, "-m", "hitl_bus.cli", *args]


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """``hitl-bus dev`` processes started by a test, each the leader of a session of its own
    (so the test can signal it as a terminal's Ctrl-C would). Whatever a failed test left
    running in such a session is killed, the stack's process groups included."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def start_dev(
    procs: list[subprocess.Popen[str]], log: Path, *args: str
) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen(
        cli_process("dev", "--port", "0", *args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
    )
    procs.append(proc)
    return proc, Lines(proc.stdout)  # type: ignore[arg-type]


def wait_exit(proc: subprocess.Popen[str], log: Path, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"did not exit within {timeout} s:\n{log.read_text()}") from None


# --- version -------------------------------------------------------------------------------


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


# --- dev -----------------------------------------------------------------------------------


@pytest.mark.realredis
def test_dev_embeds_redis_serves_the_stack_and_stops_on_ctrl_c(
    dev_stack: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    log = tmp_path / "dev.log"
    proc, lines = start_dev(dev_stack, log)  # HITL_BUS_REDIS_URL unset: Redis is embedded
    base_url, token = lines.wait_for(LOGIN_LINE).groups()
    assert "Ctrl-C stops the stack" in lines.wait_for(re.compile(r"Start a run of")).string
    with http(base_url) as anonymous, http(base_url, token) as client:
        assert anonymous.get("/healthz").status_code == 200
        assert client.get("/api/runs").status_code == 200
        # The token from the URL is the one the web server and workers share.
        unknown = f"/api/runs/{uuid.uuid4()}/cancel"
        assert anonymous.post(unknown, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post(unknown).status_code == 404
        login = anonymous.get(f"/login?token={token}", follow_redirects=False)
        if login.status_code != 404:  # the login page, where the web UI has one
            assert login.is_redirect and login.cookies
        # The chat's worker is serving: a greeter run answers and ends.
        started = client.post("/api/deployments/greeter/send-receive/runs", json={})
        assert started.status_code == 200, started.text
        run_id = started.json()["run"]["id"]
        sent = client.post(f"/api/runs/{run_id}/input", json={"value": "__EXIT__"})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 60
        while client.get(f"/api/runs/{run_id}").json()["run"]["state"]["type"] != "COMPLETED":
            assert time.monotonic() < deadline, "the greeter run did not complete"
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert wait_exit(proc, log) == 0, log.read_text()
    assert session_members(proc.pid) == {}  # Redis, workers and web server are gone too
    assert "Traceback" not in log.read_text()


@pytest.mark.realredis
def test_dev_uses_configured_redis_and_token_and_stops_on_sigterm(
    dev_stack: list[subprocess.Popen[str]],
    tmp_path: Path,
    real_redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HITL_BUS_API_TOKEN", "given token/+")
    log = tmp_path / "dev.log"
    proc, lines = start_dev(dev_stack, log)
    base_url, token = lines.wait_for(LOGIN_LINE).groups()
    assert token == "given%20token%2F%2B"  # the configured token, quoted for the URL
    with http(base_url, "given token/+") as client:
        assert client.post(f"/api/runs/{uuid.uuid4()}/cancel").status_code == 404
    admin = redis.Redis.from_url(real_redis_url)
    try:
        assert admin.hexists(key_names.DEPLOYMENTS, "greeter/send-receive")
        members = session_members(proc.pid).values()
        assert any("hitl_bus.cli notify" in cmd for cmd in members)  # the stack's notifier
    finally:
        admin.close()
    proc.send_signal(signal.SIGTERM)  # to dev alone, as a service manager would
    assert wait_exit(proc, log) == 0, log.read_text()
    assert session_members(proc.pid) == {}


@pytest.mark.realredis
@pytest.mark.usefixtures("real_redis_url")
def test_dev_runs_a_command_in_the_stack_and_exits_with_its_code(tmp_path: Path) -> None:
    code = (
        "import os; print('hi from', os.environ['HITL_BUS_REDIS_URL'],"
        " bool(os.environ['HITL_BUS_API_TOKEN'])); raise SystemExit(3)"
    )
    log = tmp_path / "dev.log"
    with log.open("w") as stderr:
        result = subprocess.run(
            cli_process("dev", "--port", "0", "--", sys.executable, "-c", code),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=120,
        )
    assert result.returncode == 3, log.read_text()
    assert f"hi from {os.environ['HITL_BUS_REDIS_URL']} True" in result.stdout
    assert LOGIN_LINE.search(result.stdout)
    assert "Ctrl-C" not in result.stdout  # a command ends the stack, not Ctrl-C


@pytest.mark.realredis
@pytest.mark.usefixtures("real_redis_url")
def test_dev_passes_sigterm_to_its_command(
    dev_stack: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    code = "import time; print('ready', flush=True); time.sleep(300)"
    log = tmp_path / "dev.log"
    proc, lines = start_dev(dev_stack, log, "--", sys.executable, "-c", code)
    lines.wait_for(re.compile(r"^ready$"))
    proc.send_signal(signal.SIGTERM)
    assert wait_exit(proc, log) == 128 + signal.SIGTERM, log.read_text()  # as a shell reports
    assert session_members(proc.pid) == {}


@pytest.mark.realredis
@pytest.mark.usefixtures("real_redis_url")
def test_dev_reports_a_process_that_dies(tmp_path: Path) -> None:
    workers = tmp_path / "workers"
    workers.mkdir()
    (workers / "__init__.py").write_text("")
    (workers / "chat.py").write_text("raise SystemExit(3)\n")
    result = subprocess.run(
        cli_process("dev", "--port", "0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "workers.chat exited with code 3" in result.stderr
    assert "login" not in result.stdout


def test_dev_fails_at_once_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("HITL_BUS_REDIS_URL", unreachable)
    result = subprocess.run(
        cli_process("dev", "--port", "0"), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert f"{unreachable}: Redis is unreachable" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_dev_shows_no_redis_password_when_redis_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("HITL_BUS_REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    result = subprocess.run(
        cli_process("dev", "--port", "0"), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert f"redis://:***@127.0.0.1:{port}/0: Redis is unreachable" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.realredis
def test_dev_with_a_password_protected_redis_prints_no_password(tmp_path: Path) -> None:
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "hunter2")  # after the start, whose check has no password
        admin.close()
        url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        code = "import os; print('reached', bool(os.environ['HITL_BUS_REDIS_URL']))"
        result = subprocess.run(
            cli_process("dev", "--port", "0", "--", sys.executable, "-c", code),
            cwd=ROOT,
            env={**os.environ, "HITL_BUS_REDIS_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert "reached True" in result.stdout and LOGIN_LINE.search(result.stdout)
    assert f"Using Redis at redis://:***@127.0.0.1:{server.port}/0" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("rediss://ops:hunter2@redis.internal:6380/1", "rediss://ops:***@redis.internal:6380/1"),
        ("redis://ops@redis.internal/0", "redis://ops@redis.internal/0"),
        ("unix://:hunter2@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        ("redis://h:1/0?password=hunter2&db=2", "redis://h:1/0?password=***&db=2"),
        ("redis+cluster://:hunter2@[::1]:7000", "redis+cluster://:***@[::1]:7000"),
    ],
)
def test_redis_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_dev_refuses_a_busy_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "chat.py").write_text("")
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = runner.invoke(app, ["dev", "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2
    assert "cannot listen" in result.output and "--port 0" in result.output


def test_dev_needs_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["dev"])
    assert result.exit_code == 2 and "repository root" in result.output


# --- web -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("real_redis_url")
def test_web_serves_health_and_openapi(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            cli_process("web", "--port", str(port)), cwd=ROOT, stderr=stderr, text=True
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, proc)
        with http(base_url) as client:
            schema = client.get("/openapi.json").json()
        assert "/api/runs" in schema["paths"]
    finally:
        proc.terminate()
        # uvicorn shuts down, then re-raises the signal: killed by SIGTERM is a clean stop.
        assert wait_exit(proc, log) in (0, -signal.SIGTERM)
    assert f"http://127.0.0.1:{port}/docs" in log.read_text()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``hitl-bus web`` runs in-process up to serving; the hosts it would have bound."""
    import uvicorn

    hosts: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: hosts.append(options["host"]))
    return hosts


def test_web_on_an_outside_address_warns_who_can_read_and_write(
    served: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_token = runner.invoke(app, ["web", "--host", "0.0.0.0", "--port", "8123"])
    assert no_token.exit_code == 0 and served == ["0.0.0.0"]
    assert "warning: 0.0.0.0:8123 is reachable from other machines" in no_token.stderr
    assert "anyone who reaches it can read every run" in no_token.stderr
    assert "only people added with hitl-bus users add can write" in no_token.stderr
    assert "Set HITL_BUS_API_TOKEN, or bind --host 127.0.0.1" in no_token.stderr

    monkeypatch.setenv("HITL_BUS_API_TOKEN", "s3cret")
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    public = runner.invoke(app, ["web", "--host", "::", "--port", "8123"])
    assert "warning: :::8123 is reachable from other machines" in public.stderr
    assert "read every run, its inputs and its logs without the token" in public.stderr
    assert "Unset HITL_BUS_PUBLIC_READS, or bind --host 127.0.0.1" in public.stderr

    monkeypatch.delenv("HITL_BUS_PUBLIC_READS")
    closed = runner.invoke(app, ["web", "--host", "192.0.2.10", "--port", "8123"])
    assert "warning" not in closed.stderr
    assert "HITL_BUS_SESSION_HTTPS_ONLY=1" in closed.stderr  # the token crosses the network

    monkeypatch.setenv("HITL_BUS_SESSION_HTTPS_ONLY", "1")
    behind_tls = runner.invoke(app, ["web", "--host", "my-host.example", "--port", "8123"])
    assert "warning" not in behind_tls.stderr and "note" not in behind_tls.stderr
    assert "s3cret" not in no_token.output + public.output + closed.output


def test_web_on_loopback_stays_quiet_about_exposure(
    served: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_token = runner.invoke(app, ["web", "--host", "127.0.0.1"])
    assert "warning" not in no_token.stderr
    assert "HITL_BUS_API_TOKEN is not set: reads are open" in no_token.stderr
    monkeypatch.setenv("HITL_BUS_API_TOKEN", "s3cret")
    monkeypatch.setenv("HITL_BUS_PUBLIC_READS", "1")
    for host in ("localhost", "::1", "127.0.0.2"):
        quiet = runner.invoke(app, ["web", "--host", host])
        assert quiet.exit_code == 0
        assert "warning" not in quiet.stderr and "note" not in quiet.stderr, host
    assert served == ["127.0.0.1", "localhost", "::1", "127.0.0.2"]


# --- worker and deploy run -----------------------------------------------------------------


def test_worker_needs_deployments() -> None:
    result = runner.invoke(app, ["worker", "hitl_bus.errors"])
    assert result.exit_code != 0
    assert "defines no deployments" in result.output


@pytest.mark.realredis
async def test_worker_serves_and_deploy_run_waits(real_redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    env = {**os.environ, "HITL_BUS_REDIS_URL": real_redis_url}
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            cli_process("worker", "tests/worker_flows.py"), cwd=ROOT, env=env, stderr=stderr
        )
    try:

        async def registered() -> bool:
            return bool(await get_bus().client.hexists(key_names.DEPLOYMENTS, "record/default"))

        await eventually(registered, timeout=30)
        result = await asyncio.to_thread(
            runner.invoke, app, ["deploy", "run", "record/default", "tag=cli", "--wait"]
        )
        assert result.exit_code == 0, result.output
        run_id, state, _name = result.stdout.split()
        assert state == "Completed"
        assert (await get_client().read_flow_run(run_id)).state.is_completed()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(wait_exit, worker, log) == 0  # type: ignore[arg-type]
    assert "Serving record/default" in log.read_text()


@pytest.mark.usefixtures("real_redis_url")
async def test_deploy_run_errors() -> None:
    missing = runner.invoke(app, ["deploy", "run", "nobody/here"])
    assert missing.exit_code == 1 and "no deployment" in missing.output
    await register(worker_flows.record_default)  # known, though no worker serves it
    no_tag = runner.invoke(app, ["deploy", "run", "record/default"])
    assert no_tag.exit_code == 1 and "missing required parameter(s) tag" in no_tag.output
    extra = runner.invoke(app, ["deploy", "run", "record/default", "tag=x", "extra=1"])
    assert extra.exit_code == 1 and "unknown parameter(s) extra" in extra.output
    queued = runner.invoke(app, ["deploy", "run", "record/default", '{"tag": "json"}'])
    assert queued.exit_code == 0, queued.output
    run_id, state, _name = queued.stdout.split()
    assert state == "Scheduled"
    assert (await get_client().read_flow_run(run_id)).parameters == {"tag": "json"}


# --- runs ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_ls_and_cancel() -> None:
    run = await create_flow_run("listed", state=State(type=StateType.SCHEDULED))
    listed = runner.invoke(app, ["runs", "ls"])
    assert listed.exit_code == 0, listed.output
    assert str(run.id) in listed.output and "Scheduled" in listed.output
    cancelled = runner.invoke(app, ["runs", "cancel", str(run.id)])
    assert cancelled.exit_code == 0, cancelled.output
    assert "Cancelled" in cancelled.output
    only = runner.invoke(app, ["runs", "ls", "--state", "cancelled"])
    assert str(run.id) in only.output
    none = runner.invoke(app, ["runs", "ls", "--state", "running"])
    assert str(run.id) not in none.output
    missing = runner.invoke(app, ["runs", "cancel", str(uuid.uuid4())])
    assert missing.exit_code == 1


@flow
async def cli_shirt() -> str:
    get_run_logger().info("asking for a shirt")
    described = ShirtOrder.with_initial_data(description="Pick a shirt", size="medium")
    order: ShirtOrder = await pause_flow_run(wait_for_input=described, timeout=60)
    get_run_logger().info("got %s %s", order.size, order.color)
    return order.color


async def logged(run_id: str, message: str) -> None:
    """Wait for a log record: a run's last records may be stored just after it ends."""

    async def there() -> bool:
        return message in [r["message"] for r in await get_client().read_logs(run_id)]

    await eventually(there)


async def paused_shirt() -> str:
    """A run of ``cli_shirt`` (executing on the test's loop), paused for its form."""
    run = await start_flow_run(cli_shirt)

    async def paused() -> bool:
        return bool((await get_client().read_flow_run(run.id)).state.is_paused())

    await eventually(paused)
    return str(run.id)


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_show() -> None:
    run_id = await paused_shirt()
    shown = runner.invoke(app, ["runs", "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "state: Paused" in shown.output
    assert "pause key 1 " in shown.output and "Pick a shirt" in shown.output
    assert "size: " in shown.output and "= 'medium'" in shown.output
    missing = runner.invoke(app, ["runs", "show", str(uuid.uuid4())])
    assert missing.exit_code == 1
    await resume_flow_run(run_id, {"size": "large", "color": "red"})
    await get_client().wait_for_flow_run(run_id, timeout=10)


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_resume() -> None:
    run_id = await paused_shirt()
    bad = runner.invoke(app, ["runs", "resume", run_id, "size=huge"])
    assert bad.exit_code == 2
    assert "  size: " in bad.stderr and "  color: " in bad.stderr  # each failing field named
    ok = runner.invoke(app, ["runs", "resume", run_id, '{"size": "large", "color": "red"}'])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == f"{run_id}: resumed"
    assert (await get_client().wait_for_flow_run(run_id, timeout=10)).state.is_completed()
    again = runner.invoke(app, ["runs", "resume", run_id, "size=large", "color=red"])
    assert again.exit_code == 1 and "not paused" in again.stderr
    missing = runner.invoke(app, ["runs", "resume", str(uuid.uuid4()), "size=large"])
    assert missing.exit_code == 1
    not_a_run = runner.invoke(app, ["runs", "resume", "not-a-run"])
    assert not_a_run.exit_code == 1 and "not a flow run id" in not_a_run.stderr


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_resume_reads_json_from_stdin() -> None:
    run_id = await paused_shirt()
    not_json = runner.invoke(app, ["runs", "resume", run_id, "-"], input="size=large")
    assert not_json.exit_code == 2 and "not valid JSON" in not_json.output
    a_list = runner.invoke(app, ["runs", "resume", run_id, "-"], input="[1]")
    assert a_list.exit_code == 2 and "JSON object" in a_list.output
    stdin = json.dumps({"size": "xlarge", "color": "black"})
    ok = runner.invoke(app, ["runs", "resume", run_id, "-"], input=stdin)
    assert ok.exit_code == 0, ok.output
    assert (await get_client().wait_for_flow_run(run_id, timeout=10)).state.is_completed()
    await logged(run_id, "got xlarge black")


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_send() -> None:
    target = await create_flow_run("inbox", state=State(type=StateType.RUNNING))
    run_id = str(target.id)
    sent = runner.invoke(app, ["runs", "send", run_id, "hello"])
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == f"{run_id}: sent"
    needs_prefix = runner.invoke(app, ["runs", "send", run_id, "size=small", "color=red"])
    assert needs_prefix.exit_code == 2 and "--key-prefix" in needs_prefix.output
    prefix = ["--key-prefix", "shirtorder-auto"]
    pairs = runner.invoke(app, ["runs", "send", run_id, "size=small", "color=red", *prefix])
    assert pairs.exit_code == 0, pairs.output
    stdin = json.dumps({"size": "large", "color": "black"})
    piped = runner.invoke(app, ["runs", "send", run_id, "-", *prefix], input=stdin)
    assert piped.exit_code == 0, piped.output
    piped_value = runner.invoke(app, ["runs", "send", run_id, "-"], input='"from stdin"')
    assert piped_value.exit_code == 0, piped_value.output
    missing = runner.invoke(app, ["runs", "send", str(uuid.uuid4()), "hello"])
    assert missing.exit_code == 1
    texts = receive_input(str, flow_run_id=target.id, timeout=1)
    assert [await texts.next(), await texts.next()] == ["hello", "from stdin"]
    orders = receive_input(ShirtOrder, flow_run_id=target.id, timeout=1)
    assert [(o.size, o.color) for o in [await orders.next(), await orders.next()]] == [
        ("small", "red"),
        ("large", "black"),
    ]
    shown = runner.invoke(app, ["runs", "show", run_id])  # what it was sent, oldest first
    inputs = [line for line in shown.output.splitlines() if line.startswith("  input ")]
    assert [line.split(":", 1)[1].strip() for line in inputs] == [
        "{'value': 'hello'}",
        "{'size': 'small', 'color': 'red'}",
        "{'size': 'large', 'color': 'black'}",
        "{'value': 'from stdin'}",
    ]


@pytest.mark.usefixtures("real_redis_url")
async def test_runs_logs_and_follow_until_the_run_ends() -> None:
    run_id = await paused_shirt()
    follow = asyncio.create_task(
        asyncio.to_thread(runner.invoke, app, ["runs", "logs", run_id, "--follow"])
    )
    await asyncio.sleep(0.5)  # following a paused run: it does not return...
    assert not follow.done()
    await resume_flow_run(run_id, {"size": "large", "color": "red"})
    followed = await asyncio.wait_for(follow, 30)  # ...until the run ends
    assert followed.exit_code == 0, followed.output
    assert "INFO    asking for a shirt" in followed.stdout
    await logged(run_id, "got large red")
    logs = runner.invoke(app, ["runs", "logs", run_id])
    assert logs.exit_code == 0 and "got large red" in logs.stdout
    missing = runner.invoke(app, ["runs", "logs", str(uuid.uuid4())])
    assert missing.exit_code == 1
