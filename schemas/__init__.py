"""The contract between producer and processors: Avro schemas and their codec."""

from eunomia.schemas.codec import AvroCodec
from eunomia.schemas.configured import codec_for
from eunomia.schemas.errors import (
    BadMagic,
    CodecError,
    IncompatibleSchema,
    SchemaMismatch,
    TruncatedMessage,
    UnknownSchema,
)
from eunomia.schemas.store import SCHEMA_NAMES, SchemaStore, default_store

__all__ = [
    "SCHEMA_NAMES",
    "AvroCodec",
    "BadMagic",
    "CodecError",
    "IncompatibleSchema",
    "SchemaMismatch",
    "SchemaStore",
    "TruncatedMessage",
    "UnknownSchema",
    "codec_for",
    "default_store",
]
