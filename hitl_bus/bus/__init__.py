"""Redis access: connections, encoding, events and the shared stream dispatcher."""

from hitl_bus.bus.core import Bus as Bus
from hitl_bus.bus.core import Remembered as Remembered
from hitl_bus.bus.core import close_bus as close_bus
from hitl_bus.bus.core import get_bus as get_bus
from hitl_bus.bus.core import read_lua as read_lua

__all__ = ["Bus", "Remembered", "close_bus", "get_bus", "read_lua"]
