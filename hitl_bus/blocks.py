"""Blocks: small named values kept in Redis (``JSONBlock`` as in Prefect).

seen = JSONBlock(value=[])
seen.save("seen-keys")
block = await JSONBlock.load("seen-keys")     # or plain JSONBlock.load(...) in sync code
block.value.append(key)
await block.save("seen-keys", overwrite=True)
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

from hitl_bus import keys
from hitl_bus._sync import dual
from hitl_bus.bus import get_bus
from hitl_bus.errors import BlockNotFound

B = TypeVar("B", bound="Block")

__all__ = ["Block", "JSONBlock"]


class Block(BaseModel):
    """Base class of blocks: a pydantic model saved as JSON under a name."""

    @classmethod
    def block_type_slug(cls) -> str:
        """The type part of the Redis key (``JSONBlock`` -> ``json-block``)."""
        return re.sub(r"(?<!^)(?=[A-Z][a-z])", "-", cls.__name__).lower()

    @classmethod
    def _key(cls, name: str) -> str:
        if not name or not name.strip():
            raise ValueError("a block name must not be empty")
        return keys.block(cls.block_type_slug(), name)

    @dual
    async def save(self, name: str, overwrite: bool = False) -> None:
        """Save under ``name``; an existing block is replaced only with ``overwrite=True``.

        :raises ValueError: the name is taken and ``overwrite`` is false.
        """
        stored = await get_bus().client.set(
            self._key(name), self.model_dump_json(), nx=not overwrite
        )
        if not stored:
            kind = type(self).__name__
            raise ValueError(f"a {kind} named {name!r} exists; pass overwrite=True to replace it")

    @classmethod
    @dual
    async def load(cls: type[B], name: str) -> B:
        """The block saved under ``name``.

        :raises BlockNotFound: nothing is saved under that name.
        """
        raw = await get_bus().client.get(cls._key(name))
        if raw is None:
            raise BlockNotFound(f"no {cls.__name__} named {name!r}")
        return cls.model_validate_json(raw)

    @classmethod
    @dual
    async def delete(cls, name: str) -> None:
        """Remove the block saved under ``name`` (no error when there is none)."""
        await get_bus().client.delete(cls._key(name))


class JSONBlock(Block):
    """Any JSON value under a name."""

    value: Any
