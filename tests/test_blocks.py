"""Blocks: named values saved in Redis (``JSONBlock``)."""

from __future__ import annotations

import pytest

from hitl_bus.blocks import JSONBlock
from hitl_bus.errors import BlockNotFound

pytestmark = pytest.mark.usefixtures("bus_url")


async def test_json_block_round_trip_and_errors() -> None:
    with pytest.raises(BlockNotFound):
        await JSONBlock.load("seen-keys")
    await JSONBlock(value=[]).save("seen-keys")
    block = await JSONBlock.load("seen-keys")
    block.value.append("k1")
    with pytest.raises(ValueError, match="overwrite"):
        await block.save("seen-keys")
    await block.save("seen-keys", overwrite=True)
    assert (await JSONBlock.load("seen-keys")).value == ["k1"]
