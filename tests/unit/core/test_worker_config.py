"""Consumer-group settings reach the faust app the workers run: the session
timeout decides how long a killed worker's partitions wait for a new owner."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eunomia.config import KafkaSettings, Settings
from eunomia.processors.runtime.app import create_app


def test_session_timeout_from_the_environment_reaches_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EUNOMIA_KAFKA__GROUP_SESSION_TIMEOUT_S", "10")
    settings = Settings()
    assert settings.kafka.group_session_timeout_s == 10
    conf = create_app("rules", settings).conf
    assert conf.broker_session_timeout == 10
    # Kafka wants heartbeats well inside the session: a third of it at most
    assert conf.broker_heartbeat_interval <= 10 / 3


def test_default_is_kafkas_and_heartbeats_stay_at_three_seconds() -> None:
    conf = create_app("rules", Settings(kafka=KafkaSettings())).conf
    assert conf.broker_session_timeout == 45 and conf.broker_heartbeat_interval == 3


def test_a_session_below_the_brokers_minimum_is_refused() -> None:
    # the broker's group.min.session.timeout.ms is 6 s: a lower value would
    # fail only when the worker joins its group
    with pytest.raises(ValidationError, match="group_session_timeout_s"):
        KafkaSettings(group_session_timeout_s=3)
