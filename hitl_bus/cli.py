"""``hitl-bus``: the command line.

Commands are thin: ``dev`` hands over to ``devstack`` (the local stack), the
``runs``/``deploy`` commands call the client and engine, ``users`` lives in
``cli_users``. Progress goes to stderr; results go to stdout, so output stays
parseable. Write commands act as the person whose token is given (``--token`` or
``HITL_BUS_TOKEN``), refused with exit code 3 when their role does not allow it;
with no token, as the machine's local operator (see ``cli_users``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hitl_bus.cli_notify import notify_app
from hitl_bus.cli_users import REFUSED, TokenOption, run_as, users_app
from hitl_bus.people.roles import Action
from hitl_bus.version import __version__

if TYPE_CHECKING:
    from hitl_bus.engine.runs import FlowRun
    from hitl_bus.engine.states import State
    from hitl_bus.settings import Settings

app = typer.Typer(help="Human-in-the-loop flows over Redis streams.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command()
def dev(
    command: Annotated[
        list[str] | None,
        typer.Argument(help="A command to run in the stack; dev exits with its code."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address the web server binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Web server port (0: a free one).")] = 8000,
) -> None:
    """Run the local stack: Redis, the workers and the web server; print the URL to open.

    Stays up until Ctrl-C or SIGTERM. With a command (hitl-bus dev -- CMD ARGS...) it
    runs CMD in the stack instead (its environment points at the stack) and exits with
    its code.
    """
    from hitl_bus import devstack

    raise typer.Exit(devstack.run(host, port, command))


@app.command()
def worker(
    module: Annotated[str, typer.Argument(help="A module path or file defining deployments.")],
    concurrency: Annotated[int, typer.Option(help="Runs executed at once.")] = 4,
    grace: Annotated[
        float, typer.Option(help="Seconds runs may finish after SIGTERM before handed back.")
    ] = 10.0,
) -> None:
    """Serve the deployments a module defines at top level (``x = flow.to_deployment(...)``)."""
    from hitl_bus.deployments import Deployment, serve

    loaded = _import(module)
    deployments = [v for v in vars(loaded).values() if isinstance(v, Deployment)]
    if not deployments:
        raise typer.BadParameter(f"{module} defines no deployments at top level")
    typer.echo(f"Serving {', '.join(d.full_name for d in deployments)}", err=True)
    serve(*deployments, concurrency=concurrency, grace=grace)


def _import(module: str) -> Any:
    """Import ``module`` by dotted name or file path (the current directory is importable)."""
    import importlib
    import importlib.util

    sys.path.insert(0, os.getcwd())
    if module.endswith(".py") or os.sep in module:
        path = Path(module).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise typer.BadParameter(f"cannot import {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    return importlib.import_module(module)


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies trusted for X-Forwarded-Proto/For (comma-separated; '*' for any): "
            "behind a TLS proxy the origin check must see https."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the web UI and the HTTP API (OpenAPI at /docs); log in with HITL_BUS_API_TOKEN."""
    import uvicorn

    from hitl_bus.settings import get_settings, loop_name
    from hitl_bus.web import create_app

    for line in exposure_warnings(host, port, get_settings()):
        typer.echo(line, err=True)
    base = f"http://{host}:{port}"
    typer.echo(f"hitl_bus web UI on {base}/ (API docs at {base}/docs)", err=True)
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        loop=loop_name(),  # HITL_BUS_LOOP: uvloop where installed, by default
    )


def _loopback(host: str) -> bool:
    """Whether only this machine can reach a server bound to ``host``."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or "" (every address): assume others can reach it


def exposure_warnings(host: str, port: int, settings: Settings) -> list[str]:
    """What a server bound to ``host`` lets others do, when that is more than it should.

    On loopback only this machine's users reach it; elsewhere, open reads or a missing
    token are worth a loud word before anyone connects.
    """
    if _loopback(host):
        if settings.api_token:
            return []
        return [
            "HITL_BUS_API_TOKEN is not set: reads are open, and only people added with "
            "hitl-bus users add can write"
        ]
    where = f"{host or '*'}:{port}"
    lines = []
    if not settings.api_token:
        lines.append(
            f"warning: {where} is reachable from other machines and HITL_BUS_API_TOKEN is "
            "not set: anyone who reaches it can read every run, its inputs and its logs "
            "(only people added with hitl-bus users add can write). Set HITL_BUS_API_TOKEN, "
            "or bind --host 127.0.0.1."
        )
    elif settings.public_reads:
        lines.append(
            f"warning: {where} is reachable from other machines and HITL_BUS_PUBLIC_READS "
            "is on: anyone who reaches it can read every run, its inputs and its logs without "
            "the token (writes still need it). Unset HITL_BUS_PUBLIC_READS, or bind "
            "--host 127.0.0.1."
        )
    if settings.api_token and not settings.session_https_only:
        lines.append(
            "note: the token and the session cookie cross the network in clear unless a TLS "
            "proxy fronts this server; behind one, set HITL_BUS_SESSION_HTTPS_ONLY=1."
        )
    return lines


runs_app = typer.Typer(help="Inspect and control flow runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("ls")
def runs_ls(
    state: Annotated[str | None, typer.Option(help="Only runs in this state type.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Only runs of this deployment.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    waiting_for_me: Annotated[
        bool,
        typer.Option(
            "--waiting-for-me",
            help="Only the paused runs you may answer (needs your token: --token or "
            "HITL_BUS_TOKEN).",
        ),
    ] = False,
    token: TokenOption = None,
) -> None:
    """List runs, newest first."""
    from hitl_bus._sync import run_blocking
    from hitl_bus.cli_users import Refused, me
    from hitl_bus.client import get_client

    async def mine() -> list[FlowRun]:
        person = await me(token)
        return await get_client().read_flow_runs(
            waiting_for=person.name, limit=limit, deployment=deployment
        )

    if waiting_for_me:
        try:
            runs = run_blocking(mine())
        except Refused as exc:
            raise _fail(f"--waiting-for-me: {exc}", REFUSED) from None
        if not runs:
            typer.echo("nothing is waiting for you", err=True)
    else:
        runs = get_client(sync_client=True).read_flow_runs(
            state=state.upper() if state else None, deployment=deployment, limit=limit
        )
    for run in runs:
        where = f" [{run.deployment}]" if run.deployment else ""
        typer.echo(f"{run.id}  {run.state.name:<10}  {run.name}  {run.flow_name}{where}")


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")], token: TokenOption = None
) -> None:
    """Cancel a run: it stops at its next task, pause, receive or log call (an operator's)."""
    from hitl_bus.client import HitlClient
    from hitl_bus.errors import FlowRunNotFound

    try:
        state = run_as(token, Action.OPERATE, HitlClient().cancel_flow_run(run_id))
    except FlowRunNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{run_id}: {state.name}")


def parse_pairs(items: list[str]) -> Any:
    """One JSON object as given, or ``a=1 b=x`` as ``{"a": 1, "b": "x"}`` (JSON, else text)."""
    import json

    if len(items) == 1 and items[0].lstrip().startswith("{"):
        try:
            return json.loads(items[0])
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}") from None
    data: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected key=value (or one JSON object)")
        try:
            data[key] = json.loads(raw)
        except json.JSONDecodeError:
            data[key] = raw
    return data


def read_stdin_json() -> Any:
    """One JSON document from stdin, for ``-`` (no shell quoting; piped from other tools)."""
    import json

    text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"stdin is not valid JSON: {exc}") from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _rejected(headline: str, errors: Sequence[Mapping[str, Any]]) -> typer.Exit:
    """Exit 2 with ``headline`` and each failing field on a line of its own."""
    from hitl_bus.schema_check import summarize

    lines = summarize(errors, sep="\n  ")
    return _fail(f"{headline}\n  {lines}" if lines else headline, 2)


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="The run to show.")]) -> None:
    """A run's state, parameters, current pause (its form fields), inputs and recent logs."""
    from datetime import datetime

    from hitl_bus.client import get_client
    from hitl_bus.client.records import RunEvent, actor_label, deed_of
    from hitl_bus.errors import FlowRunNotFound

    client = get_client(sync_client=True)
    try:
        run = client.read_flow_run(run_id)
    except FlowRunNotFound as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{run.name} ({run.id})  flow {run.flow_name}  {run.deployment or ''}".rstrip())
    typer.echo(f"state: {run.state.name}{f' - {run.state.message}' if run.state.message else ''}")
    typer.echo(f"parameters: {run.parameters}")
    pause = client.read_pause(run_id)
    if pause is not None:
        deadline = pause.deadline.isoformat() if pause.deadline else "none"
        typer.echo(f"pause key {pause.pause_key} (deadline {deadline})")
        if pause.description:
            typer.echo(f"  {pause.description}")
        for name, spec in ((pause.schema_ or {}).get("properties") or {}).items():
            default = f" = {pause.defaults[name]!r}" if name in pause.defaults else ""
            typer.echo(f"  {name}: {spec.get('type', spec.get('enum', 'any'))}{default}")
    receivers = client.read_receivers(run_id)
    if receivers and not run.state.is_final():
        typer.echo(f"receives: {', '.join(sorted(receivers))}  (hitl-bus runs send)")
    for sent in client.read_inputs(run_id)[-10:]:
        typer.echo(f"  input {sent['key_prefix']} from {sent['sender']}: {sent['data']}")
    for event in client.read_events(run_id):  # who did what: "Resumed by grace at 10:32"
        deed = deed_of(RunEvent(event["id"], event["type"], "", event["ts"], event["data"]))
        if deed is not None:
            at = datetime.fromtimestamp(event["ts"] / 1000).strftime("%H:%M")
            typer.echo(f"{deed[0]} by {actor_label(deed[1])} at {at}")
    for record in client.read_logs(run_id)[-20:]:
        typer.echo(f"  {record['level']:<7} {record['message']}")


@runs_app.command("resume")
def runs_resume(
    run_id: Annotated[str, typer.Argument(help="The paused run.")],
    values: Annotated[
        list[str] | None,
        typer.Argument(help="One JSON object, key=value pairs, or - to read JSON from stdin."),
    ] = None,
    token: TokenOption = None,
) -> None:
    """Resume a paused run; the input is checked against the pause's form first.

    Exit code 2 when the input does not fit the form (each failing field is named); 3
    when your role, or the pause's assignees, do not let you answer it.
    """
    from hitl_bus.engine.resuming import aresume_flow_run
    from hitl_bus.errors import FlowPauseTimeout, FlowRunNotFound, NotPausedError, ResumeRejected

    if values == ["-"]:
        run_input = read_stdin_json()
        if run_input is not None and not isinstance(run_input, dict):
            raise typer.BadParameter("stdin must hold a JSON object (the pause's fields)")
    else:
        run_input = parse_pairs(values) if values else None
    try:
        run_as(token, Action.ANSWER, aresume_flow_run(run_id, run_input))
    except ResumeRejected as exc:
        raise _rejected(f"{run_id}: input rejected (nothing changed)", exc.errors) from None
    except (FlowRunNotFound, NotPausedError, FlowPauseTimeout) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{run_id}: resumed")


@runs_app.command("send")
def runs_send(
    run_id: Annotated[str, typer.Argument(help="The receiving run.")],
    values: Annotated[
        list[str],
        typer.Argument(help="A value, one JSON object, key=value, or - to read JSON from stdin."),
    ],
    key_prefix: Annotated[
        str | None, typer.Option(help="The receiver's stream (needed for objects).")
    ] = None,
    token: TokenOption = None,
) -> None:
    """Send an input: a plain value (``str-auto`` etc.), or an object with ``--key-prefix``.

    Exit code 2 when the run receives on that key prefix and the input does not fit its
    type (each failing field is named); nothing is sent then.
    """
    import json

    from hitl_bus.context import acting_as
    from hitl_bus.errors import FlowRunNotFound, InputRejected, PayloadTooLarge
    from hitl_bus.inputs import asend_input
    from hitl_bus.inputs.run_input import RawInput

    data: Any
    if values == ["-"]:
        data = read_stdin_json()
    elif len(values) == 1 and "=" not in values[0] and not values[0].lstrip().startswith("{"):
        try:
            data = json.loads(values[0])
        except json.JSONDecodeError:
            data = values[0]
    else:
        data = parse_pairs(values)
    if isinstance(data, dict):
        if not key_prefix:
            raise typer.BadParameter("sending an object needs --key-prefix (the receiver's stream)")
        value: Any = RawInput(**data)
    else:
        value = data

    async def send() -> None:
        # Sent as the person acting (hitl.user.<name>), or as the CLI for the local operator.
        sender = acting_as() or "hitl.cli"
        await asend_input(value, flow_run_id=run_id, sender=sender, key_prefix=key_prefix)

    try:
        run_as(token, Action.ANSWER, send())
    except InputRejected as exc:
        headline = f"{run_id}: input rejected by its {exc.key_prefix} receiver (nothing sent)"
        raise _rejected(headline, exc.errors) from None
    except (FlowRunNotFound, PayloadTooLarge, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{run_id}: sent")


@runs_app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records.")
    ] = False,
) -> None:
    """Print a run's logs; with --follow, new ones as they come until the run ends."""
    from hitl_bus._sync import run_blocking
    from hitl_bus.client import HitlClient
    from hitl_bus.errors import FlowRunNotFound

    async def main() -> None:
        client = HitlClient()
        run = await client.read_flow_run(run_id)  # an unknown run is an error, not silence
        if not follow:
            for stored in await client.read_logs(run.id, limit=None):
                typer.echo(f"{stored['level']:<7} {stored['message']}")
            return
        async for record in client.follow_logs(run.id, after="0-0", until_final=True):
            typer.echo(f"{record.level:<7} {record.message}")

    try:
        run_blocking(main())
    except FlowRunNotFound as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


deploy_app = typer.Typer(help="Work with deployments.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("run")
def deploy_run(
    name: Annotated[str, typer.Argument(help="<flow name>/<deployment name>")],
    params: Annotated[list[str] | None, typer.Argument(help="key=value parameters.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the run to end (exit 1 unless it completes).")
    ] = False,
    token: TokenOption = None,
) -> None:
    """Queue a run of a deployment (a worker must serve it); print ``ID  STATE  NAME``."""
    from hitl_bus.deployments import arun_deployment
    from hitl_bus.errors import DeploymentNotFound, ParameterMismatch

    parameters = parse_pairs(params) if params else {}
    try:
        run = run_as(token, Action.OPERATE, arun_deployment(name, parameters, 0))
    except (DeploymentNotFound, ParameterMismatch) as exc:
        raise _fail(str(exc)) from None
    if wait:
        run = _watch(run)
    typer.echo(f"{run.id}  {run.state.name}  {run.name}")
    if wait and not run.state.is_completed():
        raise _fail(run.state.message or f"the run ended {run.state.name}")


def _changed(since: State) -> Callable[[State], bool]:
    """A wait condition: the run ended, or moved on from ``since``."""

    def check(state: State) -> bool:
        seen = (since.type, since.name, since.timestamp)
        return state.is_final() or (state.type, state.name, state.timestamp) != seen

    return check


def _progress(run: FlowRun) -> str:
    """The status line while waiting for ``run``: its state and what it waits for."""
    line = f"{run.name} ({run.id}): {run.state.name}"
    if run.state.is_scheduled():
        return f"{line}, waiting for a worker"
    if run.state.is_paused():
        return f"{line}, waiting for input: hitl-bus runs show {run.id}"
    return line


def _watch(run: FlowRun) -> FlowRun:
    """Wait for ``run`` to end, showing its state on stderr as it changes (pushed, not polled)."""
    from rich.console import Console

    from hitl_bus.client import get_client

    client = get_client(sync_client=True)
    try:
        with Console(stderr=True).status(_progress(run)) as status:
            while not run.state.is_final():
                status.update(_progress(run))
                run = client.wait_for_flow_run(run.id, until=_changed(run.state))
    except KeyboardInterrupt:
        raise _fail(f"stopped waiting; {run.id} goes on ({run.state.name})", 130) from None
    return run


app.add_typer(notify_app, name="notify")  # hitl_bus/cli_notify.py


@app.command()
def version() -> None:
    """Print the hitl_bus version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
