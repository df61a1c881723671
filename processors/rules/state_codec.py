"""How the rules worker keeps engine state in a changelog-backed table.

One table entry per (input partition, rule, key): ``state_key`` names it, the
value is the engine's state blob zlib-compressed (windows of similar events
shrink ~10x, which keeps large per-host windows under a Kafka message) and
marked with the fingerprint of the rule that kept it, so a state saved for
another version of its rule is dropped instead of misread. A changelog is input
too: a value that cannot be read raises ``StateError``, never anything else.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from typing import Any

from eunomia.processors.rules.engine import ENGINE_KEY, Engine, StateError
from eunomia.processors.rules.fleet import FLEET_KEY, LANE_SEP, FleetEngine

__all__ = ["STATE_MAX_BYTES", "decode_state", "dirty_states", "encode_state", "restore_engine",
           "saved_states", "state_key"]

# One key's state goes to the changelog as one message: above this (after zlib)
# it would exceed the broker's and the producer's 1 MiB default and crash the
# worker's producer, so it is kept in memory only and counted instead.
STATE_MAX_BYTES = 900 * 1024
SEP = "\x1f"
_ZF = "zf:"  # stored value prefix: "zf:<rule fingerprint>:" + base64 of zlib
_Z = "z:"  # older values: zlib without a fingerprint; older still: plain base64


def state_key(partition: int, rule_id: str, key: str) -> str:
    """The table key of one engine key's state on input partition ``partition``."""
    return f"{partition}{SEP}{rule_id}{SEP}{key}"


def saved_states(items: Iterable[tuple[Any, Any]], partition: int) -> list[tuple[str, str, Any]]:
    """The (rule id, key, table value) triples of ``partition`` among table items."""
    prefix = f"{partition}{SEP}"
    saved = []
    for k, value in items:
        if isinstance(k, str) and k.startswith(prefix) and value is not None:
            _p, rule_id, key = k.split(SEP, 2)
            saved.append((rule_id, key, value))
    return saved


def encode_state(blob: bytes, fingerprint: str = "") -> str:
    """The table value of one key's engine state, marked with the fingerprint of
    the rule that kept it."""
    return f"{_ZF}{fingerprint}:" + base64.b64encode(zlib.compress(blob, 1)).decode()


def decode_state(value: Any) -> tuple[str | None, bytes]:
    """(fingerprint of the rule it was saved for, None for older values; the state).
    A changelog is input too: anything else raises ``StateError``."""
    try:
        if value.startswith(_ZF):
            fp, sep, data = value[len(_ZF):].partition(":")
            if not sep:
                raise ValueError("no ':' after the fingerprint")
            return fp, zlib.decompress(base64.b64decode(data, validate=True))
        if value.startswith(_Z):
            return None, zlib.decompress(base64.b64decode(value[len(_Z):], validate=True))
        return None, base64.b64decode(value, validate=True)
    except (ValueError, TypeError, AttributeError, zlib.error) as exc:
        raise StateError(f"undecodable state value: {type(exc).__name__}: {exc}") from exc


def is_time_state(state_id: str) -> bool:
    """The watermark and reorder buffer of an engine, or the fleet's clocks: no rule's."""
    return state_id in (ENGINE_KEY, FLEET_KEY) or state_id.endswith(LANE_SEP + ENGINE_KEY)


def dirty_states(engine: Engine | FleetEngine) -> list[tuple[str, str, str | None]]:
    """(rule id, key, table value, None to delete) of every key changed since the
    last call. The engine key (watermark, reorder buffer) comes last: a kill
    between the writes then leaves rule state ahead of it, which replay can only
    repeat (at-least-once), never lose."""
    out: list[tuple[str, str, str | None]] = []
    for rule_id, key in sorted(engine.take_dirty(), key=lambda rk: is_time_state(rk[0])):
        blob = engine.export_state(rule_id, key)
        value = encode_state(blob, engine.fingerprint(rule_id) or "") if blob is not None else None
        out.append((rule_id, key, value))
    return out


def restore_engine(engine: Engine | FleetEngine, saved: Iterable[tuple[str, str, Any]]
                   ) -> tuple[int, list[tuple[str, str, str]]]:
    """Restore (rule id, key, table value) triples into ``engine``.

    Returns the number restored and the (rule id, key, reason) of those dropped:
    a state saved for another version of its rule (its rule file changed while
    no worker ran; its windows start again, as a SIGHUP reload would do), or one
    that cannot be read (damaged). Dropping one never stops the worker."""
    restored, dropped = 0, []
    for rule_id, key, value in saved:
        try:
            fp, blob = decode_state(value)
            if not is_time_state(rule_id) and fp is not None and fp != engine.fingerprint(rule_id):
                dropped.append((rule_id, key, "rule changed"))
                continue
            engine.import_state(rule_id, key, blob)
            restored += 1
        except StateError as exc:
            dropped.append((rule_id, key, str(exc)))
    return restored, dropped
