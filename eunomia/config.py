"""Configuration in one place: a YAML file plus ``EUNOMIA_*`` environment
variables (nested with ``__``, e.g. ``EUNOMIA_KAFKA__BOOTSTRAP_SERVERS``).

Environment wins over the file so a container or CI job can override one knob
without rewriting the file. Secrets are ``SecretStr``: they never print.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from eunomia.producer_settings import ProducerSettings

__all__ = ["AclSettings", "KafkaSettings", "LocalKafkaSettings", "RulesSettings", "Settings", "TopicSettings",
           "load_settings"]


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "eunomia"


def _client_logger() -> logging.Logger:
    logger = logging.getLogger("eunomia.kafka.client")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


class KafkaSettings(BaseModel):
    """How every client (producer, workers, CLI) reaches the brokers."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    schema_registry_url: str | None = None
    # How long a worker that stopped heartbeating (killed, host lost) keeps its
    # partitions before the group gives them to the others: Kafka's own default.
    # Lower fails over sooner, at the risk of rebalancing on a long pause.
    group_session_timeout_s: float = Field(default=45.0, ge=6.0, le=300.0)
    # The largest record a worker writes (key + value + headers); a topic whose
    # max.message.bytes is lower lowers it. Larger output is cut or dead-lettered.
    max_message_bytes: int = Field(default=1_000_000, ge=4096)

    def librdkafka(self) -> dict[str, Any]:
        """The confluent-kafka configuration for these settings."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            # librdkafka logs through Python logging, not straight to stderr:
            # a CLI user sees one line per failure, a service its log config.
            "logger": _client_logger(),
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            conf["ssl.ca.location"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            conf["ssl.certificate.location"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            conf["ssl.key.location"] = str(self.ssl_keyfile)
        return conf


class TopicSettings(BaseModel):
    """Topic layout: a prefix, and partition/replication defaults."""

    prefix: str = "eunomia."
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    retention_ms: int = 7 * 24 * 3600 * 1000


class AclSettings(BaseModel):
    """Who holds each role (``eunomia acls``), and what one producer may send.

    ``principals`` maps a role to its Kafka principals (``User:<name>``); a role
    left out has one, ``User:eunomia-<role>``. Per-host producer principals go
    here so that ``eunomia acls apply`` keeps them. The quotas apply to each
    producer principal: bytes/s it may produce (as compressed on the wire) and
    the share of one broker request thread (percent) its requests may take.
    """

    principals: dict[str, list[str]] = Field(default_factory=dict)
    siem_group: str | None = None  # the SIEM's consumer group; default <topic prefix>siem
    producer_byte_rate: int = Field(default=8 * 1024 * 1024, ge=1024)
    producer_request_percentage: float = Field(default=25.0, gt=0.0, le=1000.0)


class LocalKafkaSettings(BaseModel):
    """The single-node (or three-node) Apache Kafka the project runs itself."""

    version: str = "4.4.0"
    port: int = 9092
    cache_dir: Path = Field(default_factory=lambda: _cache_root() / "kafka")
    data_dir: Path = Field(default_factory=lambda: _cache_root() / "kafka-run")
    heap: str = "512m"


class RulesSettings(BaseModel):
    """Rule engine defaults that rule files may leave out."""

    # The maxspan of a sequence that names none: how long after its first event
    # it may complete (EQL's bound is the search's time range; a stream has none,
    # and pending sequences are state to be freed).
    default_maxspan_s: float = Field(default=3600.0, gt=0)
    # An event this far ahead of its host's event time is dead-lettered (a second one
    # in a row is taken as the host's clock moving on). Generous: a host's clock that
    # is merely off moves only its own windows anyway.
    max_clock_jump_s: float = Field(default=86400.0, gt=0)
    # A host with no event or heartbeat for this long (in the fleet's event time) is
    # closed out: its buffered events are applied and cross-host rules stop waiting.
    host_timeout_s: float = Field(default=300.0, gt=0)

    @property
    def default_maxspan_ns(self) -> int:
        return round(self.default_maxspan_s * 1e9)

    @property
    def max_clock_jump_ns(self) -> int:
        return round(self.max_clock_jump_s * 1e9)

    @property
    def host_timeout_ns(self) -> int:
        return round(self.host_timeout_s * 1e9)


class EnrichSettings(BaseModel):
    """Bounds of the enrich worker's per-key state."""

    # Live processes kept in the lineage per worker; past it the least recently
    # seen ones are evicted (counted): processes that never exit would otherwise
    # stay forever. About 1.2 KB each in the pure lineage (bench/lineage_memory.py).
    max_processes: int = Field(default=100_000, ge=1000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EUNOMIA_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    local_kafka: LocalKafkaSettings = Field(default_factory=LocalKafkaSettings)
    acls: AclSettings = Field(default_factory=AclSettings)
    host_id: str | None = None
    metrics_port: int = 0
    # 127.0.0.1 on a developer host; 0.0.0.0 in a container or pod so probes
    # and Prometheus can reach it.
    metrics_addr: str = "127.0.0.1"
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("EUNOMIA_CONFIG")
        if path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def topic(self, name: str) -> str:
        """Full topic name for one of the logical names of docs/architecture.md (``raw.events``)."""
        return f"{self.topics.prefix}{name}"


@cache
def load_settings() -> Settings:
    """Settings of this process (file named by ``EUNOMIA_CONFIG`` + environment)."""
    path = os.environ.get("EUNOMIA_CONFIG")
    if path and not Path(path).is_file():
        from eunomia.errors import ConfigError

        raise ConfigError(f"EUNOMIA_CONFIG names {path}, which is not a file")
    return Settings()
