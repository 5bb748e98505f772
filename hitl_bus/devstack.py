"""The local stack behind ``hitl-bus dev``: Redis, the workers, the web server, a notifier.

One process tree: Redis (an embedded redis-server on a loopback port when
``HITL_BUS_REDIS_URL`` is unset), the ``workers/`` processes, the web server and
one notifier (``hitl-bus notify``), sharing one API token (generated unless
``HITL_BUS_API_TOKEN`` is set).
Each child runs in a process group of its own, so a terminal's Ctrl-C reaches
only ``dev``, which then stops the workers (they drain) before Redis.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import typer

from hitl_bus.redis_server import RedisServer

#: The deployment ``workers.chat`` serves; ``dev`` waits for it (and for ``workers.examples``').
CHAT_DEPLOYMENT = "greeter/send-receive"
#: Seconds ``dev`` waits for the web server and the deployments before giving up.
DEV_START_TIMEOUT = 60.0
#: Seconds the stack's processes get to stop after SIGTERM (workers drain for 10 s).
DEV_STOP_TIMEOUT = 20.0


class _DetachedRedis(RedisServer):
    """An embedded redis-server in a process group of its own.

    Ctrl-C in a terminal signals the whole foreground group; Redis must outlive
    the workers' drain, so only ``dev`` hears it and stops Redis last.
    """

    def command(self) -> list[str]:
        shim = "import os, sys; os.setpgid(0, 0); os.execv(sys.argv[1], sys.argv[1:])"
        return [sys.executable, "-c", shim, *super().command()]


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***``: what a terminal or a log may show."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, "***" if name == "password" else value) for name, value in query]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(hidden, safe="*")))
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """The configured Redis URL, or an embedded server's for as long as the block runs."""
    configured = os.environ.get("HITL_BUS_REDIS_URL")
    if configured:
        typer.echo(f"Using Redis at {redact_url(configured)}", err=True)
        yield configured
        return
    server = _DetachedRedis(appendonly=True)
    with server:
        typer.echo(f"Embedded Redis ({server.version()}) at {server.url}", err=True)
        typer.echo(
            f"  export HITL_BUS_REDIS_URL={server.url}  # to reach it from elsewhere", err=True
        )
        yield server.url


class _Stopped(BaseException):
    """SIGTERM or SIGHUP reached ``dev``: stop the stack as Ctrl-C would.

    A ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` swallows it.
    """


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`_Stopped` while the block runs."""
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it (killed by signal N: 128 + N)."""
    return returncode if returncode >= 0 else 128 - returncode


def _describe_exit(returncode: int) -> str:
    """How a child ended, in words for the report (a signal by name)."""
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


@dataclass
class _Children:
    """The stack's processes, each in a process group of its own.

    Only ``dev`` hears a terminal's Ctrl-C; it then stops them all at once with
    SIGTERM (workers drain in parallel) before Redis goes.
    """

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> None:
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, process_group=0)

    def exited(self) -> str | None:
        """Why the first child that is gone went, if one is."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return f"{name} {_describe_exit(code)}"
        return None

    def stop(self, timeout: float = DEV_STOP_TIMEOUT) -> None:
        """SIGTERM every child, wait up to ``timeout``, then kill what is left.

        Asked to stop again meanwhile (a second Ctrl-C), it kills at once.
        """
        live = [p for p in self.procs.values() if p.poll() is None]
        for proc in live:
            proc.terminate()
        deadline = time.monotonic() + timeout
        try:
            for proc in live:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, deadline - time.monotonic()))
        except (KeyboardInterrupt, _Stopped):
            pass
        for proc in live:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _listen_port(host: str, port: int) -> int:
    """``port`` if it can be bound on ``host``, or a free one for 0.

    Checked before the web server starts, so a port that another server holds
    fails at once instead of that server answering our health check.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot listen on {host}:{port} ({exc.strerror}); --port 0 picks a free port",
                param_hint="--port",
            ) from None
        return int(sock.getsockname()[1])


def _base_url(host: str, port: int) -> str:
    """The URL a browser on this machine uses for a server bound to ``host``."""
    browser_host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in browser_host:
        browser_host = f"[{browser_host}]"
    return f"http://{browser_host}:{port}"


def _example_deployments() -> list[str]:
    """The deployments ``workers.examples`` serves; none when this checkout has no such module."""
    import importlib

    if not Path("workers/examples.py").exists():
        return []
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module("workers.examples")
    return [str(name) for name in getattr(module, "DEPLOYMENTS", [])]


def _healthy(base_url: str) -> bool:
    """Whether the web server answers ``/healthz`` (directly: a proxy must not answer for it)."""
    import http.client
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/healthz", timeout=2) as response:
            return int(response.status) == 200
    except (OSError, http.client.HTTPException):
        return False


async def _unregistered(names: list[str]) -> list[str]:
    from hitl_bus import keys
    from hitl_bus.bus import get_bus

    found = await get_bus().client.hmget(keys.DEPLOYMENTS, names)
    return [name for name, raw in zip(names, found, strict=True) if raw is None]


def _wait_until_up(children: _Children, base_url: str, deployments: list[str]) -> None:
    """Block, with a spinner on stderr, until the web server answers and workers registered."""
    from rich.console import Console

    from hitl_bus._sync import run_blocking
    from hitl_bus.bus import close_bus

    deadline = time.monotonic() + DEV_START_TIMEOUT
    try:
        with Console(stderr=True).status("Starting the stack") as status:
            while True:
                gone = children.exited()
                if gone:
                    raise _fail(f"{gone} while the stack was starting (its output is above)")
                waiting = [] if _healthy(base_url) else ["the web server"]
                waiting += run_blocking(_unregistered(deployments))
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise _fail(
                        f"the stack did not start within {DEV_START_TIMEOUT:.0f} s;"
                        f" still waiting for {', '.join(waiting)}"
                    )
                status.update(f"Starting the stack: waiting for {', '.join(waiting)}")
                time.sleep(0.2)
    finally:
        run_blocking(close_bus())  # hold no connection while idle (and none to a stopped Redis)


def _check_redis(url: str) -> None:
    """Fail with one clear line, before any process starts, when Redis cannot be reached;
    then turn on the notifier's Notifications page."""
    from hitl_bus._sync import run_blocking
    from hitl_bus.bus import close_bus, get_bus
    from hitl_bus.errors import BusConnectionError

    async def ping() -> None:
        from hitl_bus.notify import page

        try:
            await get_bus().client.ping()
            # The notifier also posts to the UI's Notifications page, so what it would
            # send is seen without any outside service.
            await page.turn_on()
        finally:
            await close_bus()

    try:
        run_blocking(ping())
    except BusConnectionError as exc:
        raise _fail(f"{redact_url(url)}: {exc}") from None


def _wait_for_stop(children: _Children) -> int:
    """Idle until interrupted (the caller turns that into exit 0); 1 if a child dies first."""
    while True:
        gone = children.exited()
        if gone:
            typer.echo(f"{gone}; stopping the stack", err=True)
            return 1
        time.sleep(0.5)


def _run_command(command: list[str], children: _Children) -> int:
    """Run ``command`` in the foreground of the stack and return its exit code.

    Ctrl-C reaches it directly (it shares the terminal's process group); SIGTERM to
    ``dev`` is passed on. A child of the stack that dies meanwhile is reported.
    """
    try:
        proc = subprocess.Popen(command)
    except OSError as exc:
        typer.echo(f"cannot run {command[0]}: {exc.strerror}", err=True)
        return 127
    reported = False
    try:
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return _exit_code(proc.wait(0.5))
            gone = None if reported else children.exited()
            if gone:
                typer.echo(f"{gone}; {command[0]} keeps running", err=True)
                reported = True
    except (KeyboardInterrupt, _Stopped) as exc:
        if isinstance(exc, _Stopped):
            proc.terminate()  # a terminal's Ctrl-C reaches it by itself; SIGTERM to dev does not
        with contextlib.suppress(subprocess.TimeoutExpired):
            return _exit_code(proc.wait(5))
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            return _exit_code(proc.wait(5))
        proc.kill()
        return _exit_code(proc.wait())


def _hint(deployments: list[str], command: list[str] | None) -> str:
    example = "shirt/order" if "shirt/order" in deployments else deployments[-1]
    then = ", then click Resume" if example == "shirt/order" else ""
    stop = "" if command else " Ctrl-C stops the stack."
    return f"  Start a run of {example}{then}.{stop}"


_NOTIFIER_HINT = (
    "  A notifier tells of each pause on the Notifications page; add a webhook with"
    ' `hitl-bus notify add-webhook URL` (see README, "Telling people a flow is waiting").'
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def run(host: str, port: int, command: list[str] | None) -> int:
    """Start the stack, print the URL, then wait for a stop (or run ``command``); the exit code."""
    import secrets
    from urllib.parse import quote

    if not Path("workers/chat.py").exists():
        raise typer.BadParameter("run this from the repository root (it starts workers/)")
    deployments = [CHAT_DEPLOYMENT, *_example_deployments()]
    port = _listen_port(host, port)
    base_url = _base_url(host, port)
    # Like Jupyter: a token per session, unless one is configured; every child inherits it.
    token = os.environ.get("HITL_BUS_API_TOKEN") or secrets.token_urlsafe(24)
    os.environ["HITL_BUS_API_TOKEN"] = token
    # The notifier's answer links lead to this server unless another address is configured.
    os.environ.setdefault("HITL_BUS_PUBLIC_URL", base_url)
    children = _Children()
    code = 0
    with _stop_on_signals(), local_redis() as url:
        os.environ["HITL_BUS_REDIS_URL"] = url
        try:
            _check_redis(url)
            children.start("workers.chat", [sys.executable, "-m", "workers.chat"])
            if len(deployments) > 1:
                children.start("workers.examples", [sys.executable, "-m", "workers.examples"])
            web_argv = ["web", "--host", host, "--port", str(port)]
            children.start("the web server", [sys.executable, "-m", "hitl_bus.cli", *web_argv])
            children.start("the notifier", [sys.executable, "-m", "hitl_bus.cli", "notify"])
            _wait_until_up(children, base_url, deployments)
            typer.echo(f"hitl_bus is up: open {base_url}/login?token={quote(token, safe='')}")
            typer.echo(_hint(deployments, command))
            typer.echo(_NOTIFIER_HINT, err=True)
            code = _run_command(command, children) if command else _wait_for_stop(children)
        except (KeyboardInterrupt, _Stopped):
            code = 130 if command else 0
        finally:
            children.stop()
    return code
