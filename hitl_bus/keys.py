"""Every Redis key hitl_bus uses, and nothing else (no I/O).

All keys of one flow run (or one client inbox) share the hash tag ``{<id>}`` so
they live on one Redis Cluster slot: scripts and multi-key XREADs over them
stay legal in Cluster.
"""

from __future__ import annotations

import functools

from redis.crc import key_slot as _key_slot

PREFIX = "hitl"

#: Global event stream (bucket 0 of it): every state change and input arrival of every run.
EVENTS = f"{PREFIX}:events"

# The global run indexes are split into ``shards`` buckets (``HITL_BUS_INDEX_SHARDS``), a
# run's entries all in the bucket of its id, so that on Cluster no one slot takes every
# run's index writes. Bucket 0 keeps the names the indexes had unsplit (one bucket: the
# standalone default); bucket i > 0 puts its keys under a hash tag whose slot lies in the
# i-th of ``shards`` equal slot ranges, so the buckets spread over the masters.


def index_shard(run_id: str, shards: int) -> int:
    """The bucket of a run's index entries."""
    return 0 if shards <= 1 else _key_slot(run_id.encode()) % shards


@functools.lru_cache(maxsize=1024)
def _index_prefix(shard: int, shards: int) -> str:
    if shard == 0:
        return PREFIX
    low, high = shard * 16384 // shards, (shard + 1) * 16384 // shards
    salt = 0
    while not low <= _key_slot(f"{PREFIX}-index-{shard}-{salt}".encode()) < high:
        salt += 1
    return f"{PREFIX}:{{{PREFIX}-index-{shard}-{salt}}}"


def index_prefix(run_id: str, shards: int) -> str:
    """The key prefix of a run's bucket of the global indexes and event stream, for the
    scripts that keep them on standalone Redis (``<prefix>:runs``, ``<prefix>:events``...)."""
    return _index_prefix(index_shard(run_id, shards), shards)


def events(shard: int = 0, shards: int = 1) -> str:
    """One bucket of the global event stream: the events of the runs whose index entries
    are in that bucket (bucket 0 is ``hitl:events``)."""
    return f"{_index_prefix(shard, shards)}:events"


def events_of(run_id: str, shards: int) -> str:
    """The bucket of the global event stream a run's events go to."""
    return events(index_shard(run_id, shards), shards)


def runs(shard: int = 0, shards: int = 1) -> str:
    """Sorted set of run ids (of one bucket), scored by creation time (ms)."""
    return f"{_index_prefix(shard, shards)}:runs"


def runs_expiring(shard: int = 0, shards: int = 1) -> str:
    """Sorted set of finished run ids, scored by when their keys expire (ms); for the sweep."""
    return f"{_index_prefix(shard, shards)}:runs:expiring"


def pause_deadlines(shard: int = 0, shards: int = 1) -> str:
    """Sorted set of paused run ids, scored by their pause deadline (ms); for the sweep."""
    return f"{_index_prefix(shard, shards)}:pauses"


def runs_by_state(state_type: str, shard: int = 0, shards: int = 1) -> str:
    """Sorted set of the ids of runs in one state type, scored by change time (ms)."""
    return f"{_index_prefix(shard, shards)}:runs:state:{state_type}"


def _owned(owner_id: str, suffix: str) -> str:
    return f"{PREFIX}:{{{owner_id}}}:{suffix}"


def run(run_id: str) -> str:
    """Hash holding a flow run: name, flow, parameters, state."""
    return _owned(run_id, "run")


def run_events(run_id: str) -> str:
    """Stream of one run's events (state changes, inputs)."""
    return _owned(run_id, "events")


def run_logs(run_id: str) -> str:
    """Stream of one run's log records."""
    return _owned(run_id, "logs")


def run_values(run_id: str) -> str:
    """Hash of named JSON values kept for a run (saved inputs, schemas, descriptions)."""
    return _owned(run_id, "values")


def run_value_meta(run_id: str) -> str:
    """Hash of each named value's metadata as JSON (created ms, sender, id), kept apart
    so the values hash holds only the values, which pauses and forms read as is."""
    return _owned(run_id, "values-meta")


def run_control(run_id: str) -> str:
    """Stream a paused run's process waits on: resumes and expiries land here."""
    return _owned(run_id, "control")


def run_receivers(run_id: str) -> str:
    """Hash of the key prefixes a run receives on -> their JSON schema (for send boxes)."""
    return _owned(run_id, "receivers")


def run_tasks(run_id: str) -> str:
    """Hash of a run's task results, by ``<task name>:<call index>``, for re-execution."""
    return _owned(run_id, "tasks")


#: Hash of registered deployments: full name -> JSON (flow, parameters, signature).
DEPLOYMENTS = f"{PREFIX}:deployments"
#: Consumer group every worker reads a deployment queue through.
WORKERS_GROUP = "workers"


def deployment_queue(deployment: str) -> str:
    """Stream of run ids queued for one deployment (read through a consumer group)."""
    return f"{PREFIX}:{{deployment:{deployment}}}:queue"


def worker(worker_id: str) -> str:
    """A worker's heartbeat; it expires when the worker stops beating (dead)."""
    return f"{PREFIX}:worker:{worker_id}"


def block(block_type: str, name: str) -> str:
    """A saved block (e.g. a ``JSONBlock``) by type slug and name."""
    return f"{PREFIX}:block:{block_type}:{name}"


def session(session_id: str) -> str:
    """A web login: its CSRF token and which API token it was made with; expires with it."""
    return f"{PREFIX}:session:{session_id}"


#: The people who may use the UI and API, and their tokens: one hash tag, so that adding,
#: removing and rotating change both hashes in one transaction on Cluster too.
PEOPLE = f"{PREFIX}:{{people}}:people"
#: Hash of a token's SHA-256 (hex) to the person it belongs to; tokens are never stored.
PEOPLE_TOKENS = f"{PREFIX}:{{people}}:tokens"


def answer_link(link_id: str) -> str:
    """A single-use answer link: the run, pause and assignee it is bound to; expires with it."""
    return f"{PREFIX}:{{people}}:link:{link_id}"


#: Consumer group the notifiers read ``EVENTS`` through: each event is handled by one.
NOTIFIERS_GROUP = "notifiers"
#: Hash of the notifier's webhooks: id -> JSON (URL, events, signing secret).
NOTIFY_WEBHOOKS = f"{PREFIX}:notify:webhooks"
#: Hash of the notifier's dead letters: id -> JSON (the delivery that kept failing, and why).
NOTIFY_FAILED = f"{PREFIX}:notify:failed"
#: Whether the notifier also posts to the UI's Notifications page, and for which events.
NOTIFY_PAGE = f"{PREFIX}:notify:page"
#: Stream of what the notifier posted to the UI's Notifications page, newest last (capped).
NOTIFICATIONS = f"{PREFIX}:notifications"


def notify_done(sink: str, delivery: str) -> str:
    """Marks one delivery to one sink done (sent, or parked as a dead letter); expires."""
    return f"{PREFIX}:notify:done:{sink}:{delivery}"


def notify_lease(sink: str, delivery: str) -> str:
    """Held by the notifier delivering it now (kept alive while it works, PX)."""
    return f"{PREFIX}:notify:lease:{sink}:{delivery}"


def inbox(inbox_id: str) -> str:
    """Hash marking a client inbox alive; expires after its last use."""
    return _owned(inbox_id, "inbox")


def user_owner(name: str) -> str:
    """The owner id (hash tag) of a person's mailbox: ``user:<name>``.

    Its keys are an inbox's (``input_stream(user_owner(name), prefix)`` and the rest),
    under ``hitl:{user:<name>}:``, with :func:`user_mailbox` as its marker.
    """
    return f"user:{name}"


def user_mailbox(name: str) -> str:
    """Hash marking a person's mailbox, made by the first input sent to it."""
    return _owned(user_owner(name), "mailbox")


def inbox_prefixes(inbox_id: str) -> str:
    """Stream announcing each key prefix new to an inbox: a follower learns of new reply types."""
    return _owned(inbox_id, "prefixes")


def input_stream(owner_id: str, key_prefix: str) -> str:
    """Stream of the inputs of one key prefix sent to a run or inbox."""
    return _owned(owner_id, f"input:{key_prefix}")


def input_streams(owner_id: str) -> str:
    """Set of the key prefixes that have an input stream under this owner."""
    return _owned(owner_id, "inputs")


def input_keys(owner_id: str) -> str:
    """Set of every input key accepted for this owner: makes resending idempotent."""
    return _owned(owner_id, "input-keys")


def input_index(owner_id: str) -> str:
    """Hash of input key -> ``<entry id> <key prefix>``: finds a sent input by its key."""
    return _owned(owner_id, "input-index")


def wake(tag: str, dispatcher_id: str) -> str:
    """Stream a dispatcher writes to interrupt its own blocking XREAD."""
    return _owned(tag, f"wake:{dispatcher_id}")


def hash_tag(key: str) -> str:
    """The ``{...}`` tag of a key (the whole key when it has none)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def slot(key: str) -> int:
    """The Redis Cluster slot of a key."""
    return int(_key_slot(key.encode()))
