"""The worker behind the chat example: serves ``greeter/send-receive``.

python -m workers.chat        # from the repository root
"""

from __future__ import annotations

from examples.greeter_chat import greeter
from hitl_bus import serve

send_receive = greeter.to_deployment(name="send-receive")

if __name__ == "__main__":
    serve(send_receive)
