"""A mypy plugin that types hitl_bus's dual functions by where they are called.

At runtime a dual function (``pause_flow_run``, ``send_input``, ``JSONBlock.load``...)
returns a coroutine when an event loop runs in the calling thread and blocks
otherwise. Its annotation can only say one of the two, so it says the sync result;
this plugin turns the call into ``Coroutine[Any, Any, T]`` inside an ``async def``,
where the loop runs, so ``x: int = pause_flow_run(wait_for_input=int)`` in a sync
flow and ``y = await pause_flow_run(wait_for_input=UserName)`` in an async flow both
check, and an un-awaited call there is reported. Enable it next to pydantic's::

    [tool.mypy]
    plugins = ["pydantic.mypy", "hitl_bus.mypy_plugin"]

A sync ``def`` called from async code gets a coroutine at runtime but is typed
as sync: the plugin sees the enclosing function, not the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import FuncItem, LambdaExpr, TypeInfo
from mypy.plugin import CheckerPluginInterface, FunctionContext, MethodContext, Plugin
from mypy.types import AnyType, Type, TypeOfAny

#: The dual faces that are module-level names (where they are defined).
DUAL_FUNCTIONS = frozenset(
    {
        "hitl_bus.deployments.registry.run_deployment",
        "hitl_bus.engine.cancelling.cancel_flow_run",
        "hitl_bus.engine.pausing.pause_flow_run",
        "hitl_bus.engine.resuming.resume_flow_run",
        "hitl_bus.engine.pausing.suspend_flow_run",
        "hitl_bus.engine.runs.wait_for_flow_run",
        "hitl_bus.inputs.actions.create_flow_run_input",
        "hitl_bus.inputs.actions.create_flow_run_input_from_model",
        "hitl_bus.inputs.actions.delete_flow_run_input",
        "hitl_bus.inputs.actions.filter_flow_run_input",
        "hitl_bus.inputs.actions.read_flow_run_input",
        "hitl_bus.inputs.outcomes.reject_input",
        "hitl_bus.inputs.send_input",
        "hitl_bus.inputs.send_inputs",
    }
)

#: The dual faces that are methods: (defining class, method name).
DUAL_METHODS = frozenset(
    {
        ("hitl_bus.blocks.Block", "delete"),
        ("hitl_bus.blocks.Block", "load"),
        ("hitl_bus.blocks.Block", "save"),
        ("hitl_bus.inputs.receiving.InputReceiver", "next"),
        ("hitl_bus.inputs.run_input.RunInput", "load"),
        ("hitl_bus.inputs.run_input.RunInput", "respond"),
        ("hitl_bus.inputs.run_input.RunInput", "save"),
        ("hitl_bus.inputs.run_input.RunInput", "send_to"),
    }
)

_METHOD_NAMES = frozenset(name for _, name in DUAL_METHODS)


def _in_async_function(api: CheckerPluginInterface) -> bool:
    """Whether the call sits in an ``async def`` (the innermost function that is not a lambda).

    The checker's scope is not part of the plugin interface; without it the call
    keeps its sync type.
    """
    stack = getattr(getattr(api, "scope", None), "stack", None) or []
    for item in reversed(stack):
        if isinstance(item, FuncItem) and not isinstance(item, LambdaExpr):
            return bool(item.is_coroutine)
    return False


def _typed_by_caller(ctx: FunctionContext | MethodContext) -> Type:
    if not _in_async_function(ctx.api):
        return ctx.default_return_type
    anything = AnyType(TypeOfAny.special_form)
    return ctx.api.named_generic_type(
        "typing.Coroutine", [anything, anything, ctx.default_return_type]
    )


class DualPlugin(Plugin):
    """Types each dual call as a coroutine in ``async def`` and as its value elsewhere."""

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        return _typed_by_caller if fullname in DUAL_FUNCTIONS else None

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        class_name, _, method = fullname.rpartition(".")
        if method not in _METHOD_NAMES:
            return None
        symbol = self.lookup_fully_qualified(class_name)
        info = symbol.node if symbol is not None else None
        if not isinstance(info, TypeInfo):
            return None
        for base in info.mro:  # the class that defines the method decides
            if method in base.names:
                return _typed_by_caller if (base.fullname, method) in DUAL_METHODS else None
        return None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    del version
    return DualPlugin
