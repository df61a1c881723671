"""The contract between producer and processors: Avro schemas and their codec."""

from .codec import AvroCodec
from .errors import (
    BadMagic,
    CodecError,
    IncompatibleSchema,
    SchemaMismatch,
    TruncatedMessage,
    UnknownSchema,
)
from .store import SCHEMA_NAMES, SchemaStore, default_store

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
    "default_store",
]
