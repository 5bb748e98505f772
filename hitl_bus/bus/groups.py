"""Consumer groups: made when missing, and a missing group told apart from other errors.

Redis answers ``BUSYGROUP`` when a group exists already and ``NOGROUP`` when it is
gone (a flushed Redis, a deleted stream); both are matched here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from hitl_bus.bus.reading import read_streams


class GroupMissing(Exception):
    """The stream's consumer group does not exist (any more): make it and try again."""


async def ensure_group(client: Any, stream: str, group: str, start: str = "0") -> None:
    """Make ``group`` on ``stream`` (and the stream), unless it exists already."""
    try:
        await client.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):
            raise


def raise_if_missing(exc: BaseException) -> None:
    """Raise :class:`GroupMissing` if ``exc`` is a ``NOGROUP`` reply (else do nothing)."""
    if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
        raise GroupMissing(str(exc)) from exc


async def read_group(
    client: Any,
    group: str,
    consumer: str,
    streams: dict[str, str],
    *,
    count: int,
    block: int | None = None,
) -> Any:
    """``XREADGROUP`` on a reader's connection (``[]``: nothing came within ``block`` ms);
    raises :class:`GroupMissing` when the group is gone."""
    try:
        return await read_streams(
            client, streams, block=block, count=count, group=(group, consumer)
        )
    except ResponseError as exc:
        raise_if_missing(exc)
        raise
