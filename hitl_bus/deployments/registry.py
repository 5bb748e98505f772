"""Deployments in Redis, and ``run_deployment``: queue a run for the workers.

A worker registers each deployment it serves (flow name, default parameters,
the flow's parameter names), so any process can check parameters and queue a
run without importing the flow's code.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr
from pydantic_core import to_jsonable_python

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import get_bus
from hitl_bus.deployments.deployment import Deployment
from hitl_bus.engine.parameters import parameters_schema
from hitl_bus.engine.runs import FlowRun, create_flow_run, wait_for_state
from hitl_bus.engine.states import State, StateType
from hitl_bus.engine.store import DeploymentChanged
from hitl_bus.errors import DeploymentNotFound, ParameterMismatch
from hitl_bus.schema_check import SchemaChecker, summarize

_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class DeploymentRecord(BaseModel):
    """What Redis keeps about a deployment."""

    name: str
    flow_name: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    accepted: list[str] = Field(default_factory=list)
    any_keyword: bool = False
    retries: int = 0
    #: JSON schema of the flow's parameters (from its annotations), for a start form;
    #: ``None`` when an annotation has no JSON schema.
    parameter_schema: dict[str, Any] | None = None
    _checker: SchemaChecker | None = PrivateAttr(default=None)

    def parameter_errors(self, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        """How ``parameters`` (JSON-safe) fail the parameter schema; ``[]``: they fit.

        The schema's validator is built on first use and kept with the record, which a
        process keeps for every run it starts of the deployment.
        """
        if self.parameter_schema is None:
            return []
        if self._checker is None:
            self._checker = SchemaChecker(self.parameter_schema)
        return self._checker.errors(parameters)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DeploymentNotFound(
            f"{name!r} is not a deployment name (expected '<flow name>/<deployment name>')"
        )
    return name


def record_of(deployment: Deployment) -> DeploymentRecord:
    required, accepted, any_keyword = [], [], False
    for param in deployment.flow.signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            any_keyword = True
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
            accepted.append(param.name)
            if param.default is inspect.Parameter.empty:
                required.append(param.name)
    return DeploymentRecord(
        name=check_name(deployment.full_name),
        flow_name=deployment.flow.name,
        parameters=to_jsonable_python(deployment.parameters, fallback=repr),
        required=required,
        accepted=accepted,
        any_keyword=any_keyword,
        retries=deployment.retries,
        parameter_schema=parameters_schema(deployment.flow.parameters_model),
    )


async def register(deployment: Deployment) -> DeploymentRecord:
    """Make a deployment known (a worker calls this for each deployment it serves)."""
    record = record_of(deployment)
    await get_bus().client.hset(keys.DEPLOYMENTS, record.name, record.model_dump_json())
    return record


async def read_deployment(name: str) -> DeploymentRecord:
    return _decode(name, await get_bus().client.hget(keys.DEPLOYMENTS, check_name(name)))


def _decode(name: str, raw: bytes | None) -> DeploymentRecord:
    if raw is None:
        raise DeploymentNotFound(f"no deployment named {name!r}; is a worker serving it?")
    return DeploymentRecord.model_validate_json(raw)


#: Deployment records this process has read, with the SHA-1 of each as stored: a run is
#: created against the record kept here, and the create stores nothing unless Redis
#: still holds that very record (standalone Redis; in Cluster the record is read each
#: time). At most this many are kept.
_KNOWN_LIMIT = 256
_known: dict[str, tuple[DeploymentRecord, str]] = {}


def _remember(
    name: str, raw: bytes | None, digest: str | None = None
) -> tuple[DeploymentRecord, str]:
    """Keep the record as read (``digest``: as the create script computed it, else SHA-1)."""
    record = _decode(name, raw)
    assert raw is not None
    if len(_known) >= _KNOWN_LIMIT:
        _known.pop(next(iter(_known)))
    _known[name] = known = (record, digest or hashlib.sha1(raw).hexdigest())
    return known


async def read_deployments() -> list[DeploymentRecord]:
    """Every registered deployment, by name."""
    raw = await get_bus().client.hgetall(keys.DEPLOYMENTS)
    records = [DeploymentRecord.model_validate_json(v) for v in raw.values()]
    return sorted(records, key=lambda r: r.name)


def merge_parameters(record: DeploymentRecord, given: dict[str, Any] | None) -> dict[str, Any]:
    """The deployment's defaults overlaid with ``given``, checked against the flow's signature."""
    merged = {**record.parameters, **(given or {})}
    unknown = sorted(set(merged) - set(record.accepted)) if not record.any_keyword else []
    missing = sorted(set(record.required) - set(merged))
    problems = []
    if unknown:
        problems.append(f"unknown parameter(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing required parameter(s) {', '.join(missing)}")
    if problems:
        raise ParameterMismatch(f"{record.name}: {'; '.join(problems)}")
    jsonable: dict[str, Any] = to_jsonable_python(merged, fallback=repr)
    errors = record.parameter_errors(jsonable)
    if errors:
        raise ParameterMismatch(f"{record.name}: {summarize(errors, whole='')}", errors)
    return jsonable


async def arun_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = None,
    *,
    actor: str | None = None,
) -> FlowRun:
    """Create a Scheduled run of a deployment and queue it for a worker.

    ``timeout=0`` returns the run at once; ``None`` waits for a final state; a
    number waits that long and returns the run as it then is. ``actor`` (beyond
    Prefect's signature) is who starts it: by default who is acting
    (``context.acting_as()``), else the current flow run; recorded on the Scheduled
    state the run is created in.

    :raises DeploymentNotFound: no worker has registered that deployment.
    :raises ParameterMismatch: the parameters do not fit the flow; nothing was queued.
    """
    name = check_name(name)
    bus = get_bus()
    client = bus.client
    known = _known.get(name) if bus.one_node else None
    checked = known is None  # against the record as Redis holds it now
    if known is None:
        known = _remember(name, await client.hget(keys.DEPLOYMENTS, name))
    while True:
        record, digest = known
        try:
            merged = merge_parameters(record, parameters)
            run = await create_flow_run(
                record.flow_name,
                merged,
                state=StateType.SCHEDULED,
                deployment=record.name,
                enqueue=True,
                actor=actor,
                deployment_digest=digest,
            )
            break
        except ParameterMismatch:
            if checked:
                raise
            known, checked = _remember(name, await client.hget(keys.DEPLOYMENTS, name)), True
        except DeploymentChanged as changed:  # re-registered (or gone) since it was read
            _known.pop(name, None)
            known, checked = _remember(name, changed.record, changed.digest), True
    if timeout == 0:
        return run
    return await wait_for_state(str(run.id), State.is_final, timeout)


run_deployment = dual(arun_deployment)


__all__ = [
    "DeploymentRecord",
    "arun_deployment",
    "merge_parameters",
    "read_deployment",
    "register",
    "run_deployment",
]
