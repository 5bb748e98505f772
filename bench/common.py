"""What the benchmark scripts share: clocks and statistics, the child processes' plumbing,
the results table, the throwaway Redis set-up and the report written to docs/benchmarks.md.

The ``bench_*.py`` scripts import it as ``bench.common`` (they run as modules from the repo
root, ``python -m bench.bench_bus``); each keeps only its own roles and scenarios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import queue
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent

HITL_CLIENT_NAME = "hitl-bus"  # the CLIENT SETNAME of every hitl_bus connection
RAW_CLIENT_NAME = "bench-raw"
ADMIN_CLIENT_NAME = "bench-admin"


def now_ns() -> int:
    """System-wide monotonic clock (same clock in every process on Linux)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"


# ---------------------------------------------------------------------------------------
# In the child processes.
# ---------------------------------------------------------------------------------------


def raw_client(url: str) -> Any:
    import redis.asyncio as aioredis

    # No socket timeout: redis-py 8 would cut a blocking XREAD after 5 s (its default).
    return aioredis.Redis.from_url(
        url, protocol=2, client_name=RAW_CLIENT_NAME, socket_timeout=None
    )


async def close_hitl() -> None:
    from hitl_bus.bus import close_bus

    await close_bus()


def redis_sockets(port: int) -> int:
    """TCP connections this process holds to the Redis port (from /proc, no Redis call)."""
    return len(redis_local_ports(port))


def redis_local_ports(port: int, pid: int | str = "self") -> set[int]:
    """The local TCP ports of the connections process ``pid`` holds to the Redis port
    (from /proc, no Redis call; empty when the process is gone). MONITOR names a
    connection by its address, so these tell which process sent a command."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    ports = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if remote_port == port and cols[3] == "01" and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def sample_sockets(port: int, stop: asyncio.Event) -> int:
    """The most Redis connections of this process, sampled every 250 ms until ``stop``."""
    most = 0
    while not stop.is_set():
        most = max(most, redis_sockets(port))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return max(most, redis_sockets(port))


async def wait_parked(dispatcher: Any, n: int) -> None:
    """Until ``n`` receivers wait on the dispatcher and every stream is being read (no
    wake-up or subscription in flight), so the next entry of any of them is pushed."""
    while not (dispatcher.settled() and dispatcher.waiting() >= n):
        await asyncio.sleep(0.01)


def run_role(
    make: Callable[[], Coroutine[Any, Any, None]],
    out: Any,
    profile_as: str | None,
    loop: str = "asyncio",
) -> None:
    """Run a role's coroutine on the event loop ``loop`` names (``asyncio``, ``uvloop``;
    as ``HITL_BUS_LOOP``), under cProfile into ``$BENCH_PROFILE_DIR`` when that is set and
    ``profile_as`` names the file; a failure is reported as ("error", traceback)."""
    from hitl_bus.settings import run_on_configured_loop

    def run(main: Coroutine[Any, Any, None]) -> None:
        run_on_configured_loop(main, loop)

    try:
        profile_dir = os.environ.get("BENCH_PROFILE_DIR")
        if profile_dir and profile_as is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
            try:
                run(make())
            finally:
                profiler.disable()
                profiler.dump_stats(Path(profile_dir) / f"{profile_as}-{os.getpid()}.prof")
        else:
            run(make())
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


# ---------------------------------------------------------------------------------------
# In the parent.
# ---------------------------------------------------------------------------------------


class Child:
    """One spawned role process and the queue it reports on.

    A script subclasses it with ``child_main``: a module-level function
    ``(role, kwargs, out)`` that runs the role in the new process.
    """

    child_main: ClassVar[Callable[[str, dict[str, Any], Any], None]]

    def __init__(self, ctx: Any, role: str, **kwargs: Any) -> None:
        self.role = role
        self.out = ctx.Queue()
        self.proc = ctx.Process(
            target=type(self).child_main, args=(role, kwargs, self.out), daemon=True
        )
        self.proc.start()

    def get(self, expect: str, timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                tag, payload = self.out.get(timeout=1)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise RuntimeError(f"{self.role} exited ({self.proc.exitcode})") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.role}: no {expect!r} in {timeout}s") from None
                continue
            return self._check(expect, tag, payload)

    def poll(self, expect: str) -> Any:
        """The payload if ``expect`` has arrived, else None (raises on an error report)."""
        try:
            tag, payload = self.out.get_nowait()
        except queue.Empty:
            if not self.proc.is_alive() and self.proc.exitcode != 0:
                raise RuntimeError(f"{self.role} exited ({self.proc.exitcode})") from None
            return None
        return self._check(expect, tag, payload)

    def _check(self, expect: str, tag: str, payload: Any) -> Any:
        if tag == "error":
            raise RuntimeError(f"{self.role} failed:\n{payload}")
        if tag != expect:
            raise RuntimeError(f"{self.role}: expected {expect!r}, got {tag!r}")
        return payload

    def join(self) -> None:
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def blocked_clients(admin: Any, name: str, cmd: str = "xread") -> int:
    """Connections named ``name`` blocked in ``cmd`` (CLIENT LIST)."""
    return sum(
        1
        for c in admin.client_list()
        if c.get("name") == name and c.get("cmd") == cmd and "b" in c.get("flags", "")
    )


def subscriptions(admin: Any, name: str) -> int:
    """Pub/sub channels the connections named ``name`` are subscribed to (CLIENT LIST)."""
    return sum(int(c.get("sub", 0)) for c in admin.client_list() if c.get("name") == name)


@dataclass
class Row:
    metric: str
    raw: str
    hitl: str
    ratio: str = ""
    ok: bool | None = None  # None: informational, no target


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.rows.append(Row(*args, **kwargs))

    def table(self) -> str:
        lines = [
            "| metric | raw redis-py | hitl_bus | ratio / target | pass? |",
            "|---|---:|---:|---|:---:|",
        ]
        for row in self.rows:
            verdict = "" if row.ok is None else ("yes" if row.ok else "**NO**")
            lines.append(f"| {row.metric} | {row.raw} | {row.hitl} | {row.ratio} | {verdict} |")
        return "\n".join(lines)


def add_output_args(parser: argparse.ArgumentParser, check_help: str, profile_help: str) -> None:
    """The options every script ends with: --no-write, --check, --output, --profile."""
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--check", action="store_true", help=check_help)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--profile", type=Path, help=profile_help)


def run_steps(steps: list[tuple[str, Callable[[], None]]], only: set[str]) -> None:
    """Run the steps named in ``only``, in order, each timed on stderr."""
    for name, step in steps:
        if name in only:
            t = time.perf_counter()
            step()
            print(f"  {name} done in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def versions(server: Any) -> str:
    import hiredis
    import redis

    redis_version = server.version()
    match = re.search(r"v=(\S+)", redis_version)
    return (
        f"Python {platform.python_version()}, redis-server {match.group(1) if match else '?'}, "
        f"redis-py {redis.__version__}, hiredis {hiredis.__version__}"
    )


def code_version() -> str:
    """The commit measured (read before the run: others may commit meanwhile)."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "hitl_bus", "bench"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if commit and dirty:
        commit += " + uncommitted changes"
    return commit or "?"


def write_doc(path: Path, heading: str, body: str) -> None:
    intro = (
        "# Benchmarks\n\n"
        "Measured by `bench/bench_bus.py` (see `bench/README.md`): hitl_bus against raw "
        "redis-py (`redis.asyncio`, RESP2, XADD + blocking XREAD) doing the same work, on a "
        "throwaway local redis-server. Newest first.\n"
    )
    old = path.read_text() if path.exists() else intro
    if not old.startswith("# Benchmarks"):
        old = intro + "\n" + old
    head, sep, rest = old.partition("\n## ")
    section = f"## {heading}\n\n{body}\n"
    text = head.rstrip() + "\n\n" + section + (("\n## " + rest) if sep else "")
    path.write_text(text.rstrip() + "\n")


class Bench:
    """One run of a script: the throwaway Redis, then the printed and written report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.perf_counter()
        self.load_before = os.getloadavg()[0]
        self.commit = code_version()
        self.version_line = "?"

    @contextlib.contextmanager
    def redis(self) -> Iterator[Any]:
        """A throwaway redis-server whose URL every spawned child inherits."""
        from hitl_bus.redis_server import RedisServer

        with RedisServer() as server:
            os.environ["HITL_BUS_REDIS_URL"] = server.url
            os.environ["HITL_BUS_LOG_TO_STDERR"] = "false"
            if self.args.profile:
                self.args.profile.mkdir(parents=True, exist_ok=True)
                os.environ["BENCH_PROFILE_DIR"] = str(self.args.profile.resolve())
            self.version_line = versions(server)
            print(f"redis-server on {server.url}; {self.version_line}", file=sys.stderr)
            yield server

    def report(
        self,
        res: Results,
        script: str,
        title: str = "",
        notes: list[str] | None = None,
        missed_as: str = "target(s) missed",
    ) -> int:
        """Print the table, add it to the doc (unless --no-write); the exit status."""
        args = self.args
        elapsed = time.perf_counter() - self.started
        load_after = os.getloadavg()[0]
        table = res.table()
        print(table)
        missed = [r.metric for r in res.rows if r.ok is False]
        print(f"\n{len(missed)} {missed_as}" + (": " + "; ".join(missed) if missed else ""))
        print(f"total {elapsed:.0f} s", file=sys.stderr)
        if not args.no_write:
            stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
            heading = f"{stamp}: {title}{machine()}" + (" (--quick)" if args.quick else "")
            command = " ".join(["python -m", f"bench.{Path(script).stem}", *sys.argv[1:]])
            body = "\n".join(
                [
                    f"`{command}` at commit "
                    f"`{self.commit}`; {self.version_line}; {elapsed:.0f} s in all; load "
                    f"average {self.load_before:.2f} before, {load_after:.2f} after (other "
                    "work shares the machine).",
                    "",
                    table,
                    "",
                    *[f"- {note}" for note in [*(notes or []), *res.notes]],
                ]
            )
            write_doc(args.output, heading, body)
            print(f"written to {args.output}", file=sys.stderr)
        return 1 if missed and args.check else 0
