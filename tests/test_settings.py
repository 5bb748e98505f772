"""Settings come from ``HITL_BUS_*`` as the environment is at each call, and are checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hitl_bus.settings import get_settings


def test_defaults() -> None:
    settings = get_settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.run_retention == 7 * 24 * 3600
    assert settings.reconnect_timeout == 30
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.smtp_url is None


def test_the_environment_is_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("HITL_BUS_RUN_RETENTION", "60")
    assert get_settings().run_retention == 60
    assert first.run_retention != 60  # a settings object never changes under its holder
    assert get_settings() is get_settings()  # parsed once per environment


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_BUS_RUN_RETENTION", "-1")
    with pytest.raises(ValidationError, match="run_retention"):
        get_settings()
