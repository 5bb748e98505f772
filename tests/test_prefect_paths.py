"""A migration is a search-and-replace: Prefect's imports of the interactive API resolve.

Each line is an import a Prefect user writes for this feature (Prefect's documentation
and its module layout); with ``prefect`` replaced by ``hitl_bus`` it must import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PREFECT_IMPORTS = [
    "from prefect import flow, task, get_run_logger, get_client, State",
    "from prefect import pause_flow_run, resume_flow_run, suspend_flow_run, serve",
    "from prefect import runtime",
    "from prefect.runtime import flow_run",
    "from prefect.input import RunInput, RunInputMetadata, AutomaticRunInput, Keyset",
    "from prefect.input import keyset_from_base_key, keyset_from_paused_state",
    "from prefect.input import receive_input, send_input",
    "from prefect.input import create_flow_run_input, create_flow_run_input_from_model",
    "from prefect.input import read_flow_run_input, filter_flow_run_input",
    "from prefect.input import delete_flow_run_input",
    "from prefect.input.run_input import RunInput, AutomaticRunInput, RunInputMetadata",
    "from prefect.input.run_input import receive_input, send_input, keyset_from_paused_state",
    "from prefect.input.run_input import GetInputHandler, run_input_subclass_from_type",
    "from prefect.input.actions import create_flow_run_input, acreate_flow_run_input",
    "from prefect.input.actions import create_flow_run_input_from_model",
    "from prefect.input.actions import acreate_flow_run_input_from_model",
    "from prefect.input.actions import read_flow_run_input, aread_flow_run_input",
    "from prefect.input.actions import filter_flow_run_input, afilter_flow_run_input",
    "from prefect.input.actions import delete_flow_run_input, adelete_flow_run_input",
    "from prefect.flow_runs import pause_flow_run, suspend_flow_run, resume_flow_run",
    "from prefect.flow_runs import wait_for_flow_run",
    "from prefect.states import StateType, State, StateDetails, Paused, Suspended",
    "from prefect.states import Scheduled, Pending, Running, Completed, Failed",
    "from prefect.states import Crashed, Cancelling, Cancelled, AwaitingRetry, Retrying",
    "from prefect.context import get_run_context, FlowRunContext",
    "from prefect.exceptions import Pause, NotPausedError, FlowPauseTimeout",
    "from prefect.exceptions import MissingContextError, ObjectNotFound, ObjectAlreadyExists",
    "from prefect.exceptions import FlowRunWaitTimeout, PrefectException",
    "from prefect.exceptions import ParameterTypeError, CancelledRun",
    "from prefect.client.orchestration import get_client",
    "from prefect.logging import get_run_logger",
    "from prefect.deployments import run_deployment",
]


@pytest.mark.parametrize("line", PREFECT_IMPORTS)
def test_prefects_import_resolves_with_the_package_renamed(line: str) -> None:
    exec(line.replace("prefect", "hitl_bus"), {})  # fixed strings, listed above


def test_each_name_is_one_object_whatever_the_path() -> None:
    import hitl_bus
    import hitl_bus.flow_runs
    import hitl_bus.input
    import hitl_bus.input.run_input
    import hitl_bus.states

    assert hitl_bus.input.RunInput is hitl_bus.RunInput is hitl_bus.input.run_input.RunInput
    assert hitl_bus.flow_runs.pause_flow_run is hitl_bus.pause_flow_run
    assert hitl_bus.states.State is hitl_bus.State


#: What Prefect's package root exports that the examples use.
PREFECT_ROOT = {"flow", "task", "get_run_logger", "get_client", "pause_flow_run"}
PREFECT_ROOT |= {"resume_flow_run", "suspend_flow_run", "serve", "State", "runtime"}
#: hitl_bus's own names, with no Prefect twin (documented in docs/migrating-from-prefect.md).
HITL_ONLY = {"HitlClient", "InputReceiver", "start_flow_run", "execute_flow_run", "JSONBlock"}
HITL_ONLY |= {"reject_input"}
#: Prefect's module paths, renamed.
PREFECT_MODULES = {
    "hitl_bus.input",
    "hitl_bus.input.run_input",
    "hitl_bus.input.actions",
    "hitl_bus.flow_runs",
    "hitl_bus.states",
    "hitl_bus.context",
    "hitl_bus.exceptions",
    "hitl_bus.runtime",
    "hitl_bus.client.orchestration",
    "hitl_bus.logging",
    "hitl_bus.deployments",
}
EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_examples_import_as_prefect_code_does(path: Path) -> None:
    """Each seed flow in examples/ imports through Prefect's paths where Prefect has one,
    so renaming the package in its imports gives Prefect code (tests/test_examples.py runs
    each of them)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("hitl_bus"):
            continue
        names = {alias.name for alias in node.names}
        if node.module == "hitl_bus":
            assert names <= PREFECT_ROOT | HITL_ONLY, f"{path.name}: {names - PREFECT_ROOT}"
        elif node.module == "hitl_bus.blocks":
            assert names <= HITL_ONLY
        else:
            assert node.module in PREFECT_MODULES, f"{path.name} imports from {node.module}"
