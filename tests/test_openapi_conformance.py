"""The published OpenAPI schema is true: generated requests get no server error, and every
answer (errors included) has a status and a body the schema declares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from hitl_bus.bus import close_bus
from hitl_bus.web import create_app

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAMS = r"^/api/(events|runs/\{run_id\}/(logs|replies|live))$"  # SSE: they never end


schema = schemathesis.openapi.from_asgi("/openapi.json", create_app()).exclude(path_regex=STREAMS)


@pytest.fixture
def token_and_redis(real_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A configured token (sent as a Bearer header) and a flushed real Redis."""
    monkeypatch.setenv("HITL_BUS_API_TOKEN", TOKEN)
    yield
    # The app ran on schemathesis's own event loop: close the bus it opened there.
    from schemathesis.python import asgi

    asgi._get_portal().call(close_bus)


@pytest.mark.usefixtures("token_and_redis")
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_is_declared_and_none_is_a_server_error(case: Any) -> None:
    case.call_and_validate(
        headers=AUTH,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )


@pytest.mark.usefixtures("real_redis_url")
async def test_error_shapes_are_declared_on_every_route() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        spec = (await client.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert {"401", "500", "503"} <= responses.keys(), where
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    expected = "InternalErrorBody" if status == "500" else "ErrorBody"
                    assert ref.endswith(f"/{expected}"), (where, status)
            if method == "post" and "{run_id}/cancel" not in path:
                assert "requestBody" in operation, where
                assert {"413", "415", "422"} <= responses.keys(), where
    error_body = spec["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
