"""The seed's chat: a greeter run answers every name a sender run sends it.

The greeter is a deployment served by a worker process; the sender starts it
with ``run_deployment`` and talks to it across processes:

    python -m workers.chat                     # the worker (another terminal)
    python examples/greeter_chat.py            # type names; q or quit ends it
    python examples/greeter_chat.py < /dev/null    # no terminal: a scripted chat

``hitl-bus dev`` (``make run``) starts Redis, the worker and the chat together.
The greeter replies with ``respond()``, which reaches the sender's own run.
"""

from __future__ import annotations

import asyncio
import sys

from hitl_bus import flow
from hitl_bus.deployments import run_deployment
from hitl_bus.input.run_input import receive_input, send_input
from hitl_bus.logging import get_run_logger

EXIT_SIGNAL = "__EXIT__"
DEPLOYMENT = "greeter/send-receive"
SCRIPTED_NAMES = ["Ada", "Grace", "Linus"]


@flow
async def greeter() -> None:
    """Answer each name with a greeting until the exit signal arrives."""
    async for name_input in receive_input(str, with_metadata=True, timeout=None):
        if name_input.value == EXIT_SIGNAL:
            get_run_logger().info("Goodbye!")
            return
        await name_input.respond(f"Hello, {name_input.value}!")


async def _ask(prompt: str) -> str | None:
    """A name from the terminal, or ``None`` at end of input."""
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


@flow
async def sender(names: list[str] | None = None) -> list[str]:
    """Start a greeter, send it names, print each reply; ``names`` replaces the terminal."""
    greeter_run = await run_deployment(DEPLOYMENT, timeout=0)  # a worker runs it
    receiver = receive_input(str, timeout=30)
    replies: list[str] = []
    scripted = list(names) if names is not None else None
    while True:
        if scripted is not None:
            name = scripted.pop(0) if scripted else None
        else:
            name = await _ask("What is your name? (q to quit) ")
        if name is None or name.strip().lower() in {"q", "quit"}:
            await send_input(EXIT_SIGNAL, flow_run_id=greeter_run.id)
            return replies
        await send_input(name.strip(), flow_run_id=greeter_run.id)
        reply = await receiver.next()
        print(reply, flush=True)
        replies.append(reply)


def main() -> None:
    names = None if sys.stdin.isatty() else SCRIPTED_NAMES
    if names is not None:
        print(f"(no terminal: a scripted chat with {', '.join(names)})", flush=True)
    asyncio.run(sender(names))


if __name__ == "__main__":
    main()
