"""``state_json``: states written without a model, exactly as a model writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hitl_bus.engine.states import State, StateDetails, StateType, state_json
from hitl_bus.ids import uuid4_text


@pytest.mark.parametrize(
    ("state_type", "name", "message", "actor"),
    [
        (StateType.RUNNING, None, None, None),
        (StateType.SCHEDULED, "Resuming", None, "hitl.user.grace"),
        (StateType.FAILED, None, "The pause was not resumed in time", None),
        (StateType.CANCELLING, None, 'quote " backslash \\ newline \n tab \t', "hitl.user.zoë"),
        (StateType.COMPLETED, None, "control \x01 and line separator \u2028 é 漢", None),
    ],
)
def test_state_json_is_what_the_model_writes(
    state_type: StateType, name: str | None, message: str | None, actor: str | None
) -> None:
    written = state_json(state_type, name=name, message=message, actor=actor)
    parsed = State.model_validate_json(written)
    model = State(
        id=parsed.id,
        type=state_type,
        name=name or "",
        message=message,
        timestamp=parsed.timestamp,
        state_details=StateDetails(actor=actor),
    )
    assert written == model.model_dump_json()
    assert abs((datetime.now(UTC) - parsed.timestamp).total_seconds()) < 60


def test_state_json_keeps_a_given_id() -> None:
    given = uuid4_text()
    assert State.model_validate_json(state_json(StateType.RUNNING, state_id=given)).id == uuid.UUID(
        given
    )


def test_a_timestamp_on_a_whole_second_is_written_as_the_model_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return whole

    monkeypatch.setattr("hitl_bus.engine.states.datetime", Clock)
    parsed = State.model_validate_json(state_json(StateType.RUNNING))
    assert parsed.timestamp == whole
    assert State(id=parsed.id, type=StateType.RUNNING, timestamp=whole).model_dump_json() == (
        state_json(StateType.RUNNING, state_id=str(parsed.id))
    )


def test_uuid4_text_is_a_version_4_uuid() -> None:
    drawn = {uuid4_text() for _ in range(1000)}
    assert len(drawn) == 1000
    for text in drawn:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
