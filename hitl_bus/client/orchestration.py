"""Prefect's ``prefect.client.orchestration``: ``get_client`` under Prefect's module path.

Re-exports; each name is defined in :mod:`hitl_bus.client`.
"""

from hitl_bus.client import HitlClient, SyncHitlClient, get_client

#: Prefect's names for the clients ``get_client`` returns.
PrefectClient = HitlClient
SyncPrefectClient = SyncHitlClient

__all__ = ["HitlClient", "PrefectClient", "SyncHitlClient", "SyncPrefectClient", "get_client"]
