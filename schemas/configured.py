"""The codec a process's settings call for: Confluent framing through the
Schema Registry when ``kafka.schema_registry_url`` is set, single-object
encoding otherwise. Every writer and reader builds its codec here, so one
setting switches the whole pipeline (a worker left on the plain codec wrote
framing its readers could not decode)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eunomia.schemas.codec import AvroCodec
from eunomia.schemas.store import default_store

if TYPE_CHECKING:
    from eunomia.config import Settings

__all__ = ["codec_for"]


def codec_for(settings: Settings) -> AvroCodec:
    url = settings.kafka.schema_registry_url
    if not url:
        return AvroCodec()
    from eunomia.schemas.registry import RegistryResolver

    store = default_store()
    return AvroCodec(store, RegistryResolver(url, store))
