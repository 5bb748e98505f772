"""The notifier: tells people and chat channels that a flow waits for them.

``hitl-bus notify`` reads the global event stream through a consumer group and,
for each pause (and the events a webhook asks for), posts signed webhooks and
emails the pause's assignees, each with a single-use answer link. Bottom up:
where to send (``sinks``), what to say (``notice``), how often to try
(``retry``), posting a webhook (``webhook``), sending an email (``mail``), each
delivery once (``ledger``), what failed for good (``deadletters``) and the loop
(``consumer``).
"""

from hitl_bus.notify.consumer import Notifier as Notifier
from hitl_bus.notify.consumer import NotifierOptions as NotifierOptions
from hitl_bus.notify.retry import RetryPolicy as RetryPolicy

__all__ = ["Notifier", "NotifierOptions", "RetryPolicy"]
