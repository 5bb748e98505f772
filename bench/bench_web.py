"""Benchmark the web UI's promise: the page confirms within a second that the flow has the input.

Run from the repo root::

    .venv/bin/python -m bench.bench_web            # about 30 s
    .venv/bin/python -m bench.bench_web --quick    # fewer rounds

On a throwaway redis-server, with the app served by uvicorn in a thread and the
flows running in this process:

1. API: a flow pauses again and again; each round POSTs ``/api/runs/{id}/resume`` and
   times until the ``pause.answered`` event reaches an open SSE stream of the run
   (what the page waits for), and the POST's own duration.
2. Browser: headless Chromium (Debian's) on the run page; each round fills the form,
   clicks Resume, and the page itself times (``performance.now()``) from the click to
   the "The flow has your input" notice. Needs ``chromium``; skipped without it.
3. Page weight: bytes of the run page's HTML, scripts and stylesheet (no build step).

The table is printed and put at the top of ``docs/benchmarks.md`` (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, ms, percentile
from hitl_bus import RunInput, flow, get_client, pause_flow_run, start_flow_run
from hitl_bus.redis_server import RedisServer

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Answer(RunInput):
    count: int
    note: str = ""


@contextlib.contextmanager
def serve() -> Iterator[str]:
    """The app in its own process (as deployed), on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    argv = [sys.executable, "-m", "hitl_bus.cli", "web", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@flow
async def answers_forever(rounds: int) -> None:
    for _ in range(rounds):
        await pause_flow_run(wait_for_input=Answer, timeout=600)


async def wait_paused(run_id: str, key: str | None = None) -> str:
    while True:
        pause = await get_client().read_pause(run_id)
        if pause is not None and pause.pause_key != key:
            return pause.pause_key
        await asyncio.sleep(0.002)


async def api_rounds(base: str, rounds: int) -> dict[str, list[float]]:
    run = await start_flow_run(answers_forever, rounds)
    run_id = str(run.id)
    confirm: list[float] = []
    post: list[float] = []
    answered: asyncio.Queue[str] = asyncio.Queue()
    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as http:

        async def listen() -> None:
            async with http.stream("GET", f"/api/events?run_id={run_id}") as stream:
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event == "pause.answered":
                        await answered.put(json.loads(line[5:])["data"]["pause_key"])

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.3)  # the stream is open
        key = None
        for _ in range(rounds):
            key = await wait_paused(run_id, key)
            start = time.perf_counter_ns()
            reply = await http.post(f"/api/runs/{run_id}/resume", json={"input": {"count": 1}})
            post.append(time.perf_counter_ns() - start)
            reply.raise_for_status()
            while await answered.get() != key:
                pass
            confirm.append(time.perf_counter_ns() - start)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    return {"confirm": confirm, "post": post}


async def browser_rounds(base: str, rounds: int, chromium: str | None) -> list[float] | None:
    if chromium is None:
        return None
    from playwright.async_api import async_playwright

    run = await start_flow_run(answers_forever, rounds)
    run_id = str(run.id)
    out: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium)
        page = await browser.new_page(base_url=base)
        await page.goto(f"/login?token={TOKEN}&next=/runs/{run_id}")
        key = None
        for _ in range(rounds):
            key = await wait_paused(run_id, key)
            form = page.locator(f'#resume-form[data-pause-key="{key}"]')
            await form.get_by_role("button", name="Resume").wait_for()
            await page.wait_for_function("() => !document.getElementById('resume-button').disabled")
            await page.get_by_label("Count").fill("2")
            took = await asyncio.wait_for(
                page.evaluate(
                    """() => new Promise((resolve) => {
                    const notice = document.getElementById('notice');
                    const start = performance.now();
                    const seen = new MutationObserver(() => {
                      if (notice.textContent.includes('has your input')) {
                        seen.disconnect(); resolve(performance.now() - start);
                      }
                    });
                    seen.observe(notice, {childList: true, characterData: true, subtree: true});
                    document.getElementById('resume-button').click();
                })"""
                ),
                10,
            )
            out.append(float(took) * 1e6)
            await page.evaluate("document.getElementById('notice').textContent = ''")
        await browser.close()
    return out


async def page_weight(base: str) -> dict[str, tuple[int, int]]:
    """Bytes of each script and stylesheet a run page loads: as sent (gzip) and uncompressed."""
    sizes = {}
    async with httpx.AsyncClient(base_url=base, headers=AUTH) as http:
        page = (await http.get(f"/runs/{uuid.uuid4()}")).text
        for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
            response = await http.get(path, headers={"Accept-Encoding": "gzip"})
            sizes[path.split("?")[0]] = (response.num_bytes_downloaded, len(response.content))
    return sizes


def report(rows: list[tuple[str, str, str, str]], seconds: float) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {stamp}: web UI, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Linux {platform.release()}",
        "",
        f"`python -m bench.bench_web` at commit `{commit}`; Python {platform.python_version()}; "
        f"{seconds:.0f} s in all.",
        "",
        "| metric | value | target | pass? |",
        "|---|---:|---|:---:|",
        *[f"| {name} | {value} | {target} | {ok} |" for name, value, target, ok in rows],
        "",
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    head, sep, rest = text.partition("\n## ")
    path.write_text(f"{head}\n{section}\n{sep.lstrip()}{rest}" if sep else text + section)


async def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    rows: list[Any] = []
    with RedisServer() as server:
        os.environ["HITL_BUS_REDIS_URL"] = server.url
        os.environ["HITL_BUS_API_TOKEN"] = TOKEN
        os.environ["HITL_BUS_LOG_TO_STDERR"] = "false"
        with serve() as base:
            api = await api_rounds(base, args.rounds)
            for name, values in (("resume POST → pause.answered on SSE", api["confirm"]),):
                p50, p99 = percentile(values, 50), percentile(values, 99)
                ok = "yes" if p99 < 1e9 else "no"
                rows.append((f"API: {name} p50 / p99", f"{ms(p50)} / {ms(p99)}", "< 1 s", ok))
            rows.append(
                (
                    "API: resume POST p50",
                    ms(percentile(api["post"], 50)),
                    "",
                    "",
                )
            )
            chromium = shutil.which("chromium")
            clicks = await browser_rounds(base, args.browser_rounds, chromium)
            if clicks is None:
                rows.append(("browser: click → confirmation", "chromium missing", "< 1 s", ""))
            else:
                p50, p99 = percentile(clicks, 50), percentile(clicks, 99)
                ok = "yes" if p99 < 1e9 else "no"
                name = "browser: click Resume → 'has your input' p50 / p99"
                rows.append((name, f"{ms(p50)} / {ms(p99)}", "< 1 s", ok))
            sizes = await page_weight(base)
            wire = sum(w for w, _ in sizes.values())
            raw = sum(r for _, r in sizes.values())
            parts = ", ".join(f"{Path(p).name} {w:,}" for p, (w, _) in sizes.items())
            name = "run page scripts + stylesheet, bytes sent (gzip) / uncompressed"
            rows.append((name, f"{wire:,} / {raw:,}", parts, ""))
    section = report(rows, time.monotonic() - started)
    print(section)
    if not args.no_write:
        write(section)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parsed = parser.parse_args()
    parsed.rounds = 50 if parsed.quick else 300
    parsed.browser_rounds = 10 if parsed.quick else 40
    asyncio.run(main(parsed))
