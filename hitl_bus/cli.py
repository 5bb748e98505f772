"""``hitl-bus``: the command line.

``hitl-bus dev`` runs the local stack: an embedded redis-server on a loopback
port when ``HITL_BUS_REDIS_URL`` is unset (its URL exported to every process
it starts and printed), then the stack's processes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hitl_bus import __version__
from hitl_bus.redis_server import RedisServer

app = typer.Typer(help="Human-in-the-loop flows over Redis streams.", no_args_is_help=True)

DEFAULT_DEV_COMMAND = [sys.executable, "examples/greeter_chat.py"]


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """The configured Redis URL, or an embedded server's for as long as the block runs."""
    configured = os.environ.get("HITL_BUS_REDIS_URL")
    if configured:
        typer.echo(f"Using Redis at {configured}", err=True)
        yield configured
        return
    server = RedisServer(appendonly=True)
    with server:
        typer.echo(f"Embedded Redis ({server.version()}) at {server.url}", err=True)
        typer.echo(
            f"  export HITL_BUS_REDIS_URL={server.url}  # to reach it from elsewhere", err=True
        )
        yield server.url


@app.command()
def dev(
    command: Annotated[
        list[str] | None,
        typer.Argument(help="What to run in the stack (default: the chat example)."),
    ] = None,
) -> None:
    """Run the local stack: Redis (embedded when none is configured) and the chat example."""
    argv = command or DEFAULT_DEV_COMMAND
    if not command and not Path(DEFAULT_DEV_COMMAND[1]).exists():
        raise typer.BadParameter("run this from the repository root, or give a command to run")
    with local_redis() as url:
        env = {**os.environ, "HITL_BUS_REDIS_URL": url}
        try:
            code = subprocess.call(argv, env=env)
        except KeyboardInterrupt:
            code = 130
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the hitl_bus version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
