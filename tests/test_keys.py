"""Key names: every key of a run (or inbox) carries its id as the hash tag, so it is on one
Cluster slot; global keys carry no tag."""

from __future__ import annotations

import uuid

import pytest
from redis.crc import key_slot

from hitl_bus import keys as key_names


async def test_every_run_key_is_on_the_runs_slot() -> None:
    run_id = str(uuid.uuid4())
    per_run = [
        key_names.run(run_id),
        key_names.run_events(run_id),
        key_names.run_logs(run_id),
        key_names.run_values(run_id),
        key_names.input_stream(run_id, "str-auto"),
        key_names.input_streams(run_id),
        key_names.input_keys(run_id),
    ]
    assert {key_names.slot(k) for k in per_run} == {key_names.slot("{" + run_id + "}")}


def _run_keys(run_id: str) -> list[str]:
    return [
        key_names.run(run_id),
        key_names.run_events(run_id),
        key_names.run_logs(run_id),
        key_names.run_values(run_id),
        key_names.run_control(run_id),
        key_names.run_receivers(run_id),
        key_names.run_tasks(run_id),
        key_names.input_stream(run_id, "shirtorder-auto"),
        key_names.input_streams(run_id),
        key_names.input_keys(run_id),
        key_names.wake(run_id, "d1"),
    ]


def test_every_key_of_a_run_has_the_run_id_as_its_hash_tag() -> None:
    run_id = str(uuid.uuid4())
    keys = _run_keys(run_id)
    assert len(set(keys)) == len(keys)
    assert {key_names.hash_tag(k) for k in keys} == {run_id}
    assert {key_names.slot(k) for k in keys} == {key_names.slot(run_id)}


def test_runs_land_on_many_slots() -> None:
    slots = {key_names.slot(key_names.run(str(uuid.uuid4()))) for _ in range(50)}
    assert len(slots) > 40


def test_an_inbox_and_its_streams_share_the_inbox_id_as_tag() -> None:
    inbox_id = uuid.uuid4().hex
    keys = [
        key_names.inbox(inbox_id),
        key_names.input_stream(inbox_id, "str-auto"),
        key_names.input_streams(inbox_id),
        key_names.input_keys(inbox_id),
    ]
    assert {key_names.hash_tag(k) for k in keys} == {inbox_id}


def test_a_deployment_queue_is_tagged_by_its_deployment() -> None:
    queue = key_names.deployment_queue("greeter/default")
    assert queue == "hitl:{deployment:greeter/default}:queue"
    assert key_names.hash_tag(queue) == "deployment:greeter/default"


def test_global_keys_carry_no_tag() -> None:
    for key in [
        key_names.EVENTS,
        key_names.runs(),
        key_names.runs_expiring(),
        key_names.pause_deadlines(),
        key_names.DEPLOYMENTS,
        key_names.runs_by_state("PAUSED"),
        key_names.worker("w1"),
        key_names.block("json-block", "seen-keys"),
        key_names.session("abc"),
    ]:
        assert key_names.hash_tag(key) == key
        assert "{" not in key


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("plain", "plain"),
        ("a{b}c", "b"),
        ("{first}{second}", "first"),
        ("a{}b{c}", "a{}b{c}"),  # an empty tag counts as none: the whole key is hashed
        ("a{b", "a{b"),
        ("a}b{c}", "c"),
    ],
)
def test_hash_tag_follows_the_cluster_rule(key: str, tag: str) -> None:
    assert key_names.hash_tag(key) == tag
    assert key_names.slot(key) == key_names.slot(tag)


def test_slot_is_the_cluster_slot() -> None:
    assert key_names.slot("foo") == 12182  # CLUSTER KEYSLOT foo
    assert key_names.slot("{user1000}.following") == key_names.slot("{user1000}.followers")
    assert all(0 <= key_names.slot(str(uuid.uuid4())) < 16384 for _ in range(100))


def test_one_index_bucket_keeps_the_unsplit_names() -> None:
    assert key_names.runs() == key_names.runs(0, 16) == "hitl:runs"
    assert key_names.runs_by_state("PAUSED", 0, 1) == "hitl:runs:state:PAUSED"
    assert key_names.index_shard("any-run", 1) == 0


@pytest.mark.parametrize("shards", [2, 3, 16, 64])
def test_index_buckets_spread_evenly_over_the_slots(shards: int) -> None:
    """Bucket i's keys share one tag, on a slot in the i-th of ``shards`` equal ranges."""
    for shard in range(1, shards):
        names = [
            key_names.runs(shard, shards),
            key_names.runs_expiring(shard, shards),
            key_names.pause_deadlines(shard, shards),
            key_names.runs_by_state("PAUSED", shard, shards),
        ]
        assert len({key_names.hash_tag(name) for name in names}) == 1
        slot = key_slot(names[0].encode())
        assert shard * 16384 // shards <= slot < (shard + 1) * 16384 // shards


def test_runs_fall_into_every_bucket() -> None:
    seen = {key_names.index_shard(str(uuid.uuid4()), 16) for _ in range(2000)}
    assert seen == set(range(16))
