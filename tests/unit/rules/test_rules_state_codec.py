"""How the rules worker stores one key's engine state in its changelog table."""

from __future__ import annotations

import base64
import json

from eunomia.processors.rules_worker import STATE_MAX_BYTES, decode_state, encode_state


def test_state_round_trips_and_repetitive_windows_shrink_below_the_message_limit() -> None:
    # a per-host window of 20k similar events: ~1.6 MB raw, more than a changelog message
    blob = json.dumps([{"ts": 1_700_000_000_000_000_000 + i, "port": i % 1024, "pid": 4242}
                       for i in range(20_000)]).encode()
    assert len(blob) > 1024 * 1024
    value = encode_state(blob)
    assert decode_state(value) == blob
    assert len(value) < STATE_MAX_BYTES


def test_values_saved_before_compression_still_restore() -> None:
    blob = b'{"window": [1, 2, 3]}'
    assert decode_state(base64.b64encode(blob).decode()) == blob
