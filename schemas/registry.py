"""Confluent Schema Registry support through confluent-kafka's client.

Subjects follow the record-name strategy (the record's full name), so one schema
serves every topic that carries it. Ids are cached: the registry is asked once
per schema per process.
"""

from __future__ import annotations

import json

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from eunomia.schemas.errors import UnknownSchema
from eunomia.schemas.store import SchemaStore, WriterVersion

__all__ = ["RegistryResolver"]


class RegistryResolver:
    """Maps schema ids to writer versions and registers the current schemas."""

    def __init__(self, url: str, store: SchemaStore, conf: dict[str, str] | None = None) -> None:
        self._client = SchemaRegistryClient({"url": url, **(conf or {})})
        self._store = store
        self._ids: dict[str, int] = {}
        self._writers: dict[int, WriterVersion] = {}

    def id_for(self, name: str, schema_json: str) -> int:
        sid = self._ids.get(name)
        if sid is None:
            fullname = self._store.parsed(name)["name"]
            sid = self._client.register_schema(fullname, Schema(schema_json, "AVRO"))
            self._ids[name] = sid
        return sid

    def writer_for(self, schema_id: int) -> WriterVersion:
        version = self._writers.get(schema_id)
        if version is None:
            try:
                schema = self._client.get_schema(schema_id)
            except Exception as exc:
                raise UnknownSchema(
                    f"schema id {schema_id} not found in the schema registry: {exc}") from exc
            version = self._store.add_writer(json.loads(schema.schema_str))
            self._writers[schema_id] = version
        return version
