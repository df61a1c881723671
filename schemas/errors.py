"""Typed decode/encode errors: one per way a message can be unreadable.

Processors route every ``CodecError`` to the dead-letter topic with
``type(err).__name__`` and ``str(err)`` as the reason, so messages here are
written for the operator who reads the DLQ.
"""

from eunomia.errors import EunomiaError


class CodecError(EunomiaError):
    """A message could not be encoded or decoded."""


class TruncatedMessage(CodecError):
    """Fewer bytes than the framing or the Avro body needs."""


class BadMagic(CodecError):
    """The first bytes are neither Avro single-object (C3 01) nor Confluent (00)."""


class UnknownSchema(CodecError):
    """The fingerprint or registry id names no schema this reader knows."""


class SchemaMismatch(CodecError):
    """The body does not fit the writer schema, or a record does not fit on encode."""


class IncompatibleSchema(CodecError):
    """A writer schema cannot be resolved to the current reader schema."""
