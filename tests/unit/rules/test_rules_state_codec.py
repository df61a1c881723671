"""How the rules worker stores one key's engine state in its changelog table,
and what it does with a saved state it cannot use (a changelog is input too)."""

from __future__ import annotations

import base64
import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from eunomia.processors.rules import ENGINE_KEY, Engine, StateError, load_text
from eunomia.processors.rules.state_codec import STATE_MAX_BYTES, decode_state, encode_state, restore_engine
from tests.support.enriched_events import S, ev, ids
from tests.unit.rules.test_rules_semantics import ALL_FORMS, _scenario


def test_state_round_trips_and_repetitive_windows_shrink_below_the_message_limit() -> None:
    # a per-host window of 20k similar events: ~1.6 MB raw, more than a changelog message
    blob = json.dumps([{"ts": 1_700_000_000_000_000_000 + i, "port": i % 1024, "pid": 4242}
                       for i in range(20_000)]).encode()
    assert len(blob) > 1024 * 1024
    value = encode_state(blob, "fp1")
    assert decode_state(value) == ("fp1", blob)
    assert len(value) < STATE_MAX_BYTES


def test_values_saved_before_compression_still_restore() -> None:
    blob = b'{"window": [1, 2, 3]}'
    assert decode_state(base64.b64encode(blob).decode()) == (None, blob)
    z = "z:" + base64.b64encode(zlib.compress(blob)).decode()  # compressed, before fingerprints
    assert decode_state(z) == (None, blob)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers(), st.none(),
                 st.text().map(lambda t: "zf:" + t), st.text().map(lambda t: "z:" + t),
                 st.binary().map(lambda b: "zf:ab:" + base64.b64encode(b).decode())))
def test_decode_state_raises_only_its_typed_error(value: object) -> None:
    try:
        fp, blob = decode_state(value)
    except StateError:
        return
    assert isinstance(blob, bytes) and (fp is None or isinstance(fp, str))


def _saved(engine: Engine) -> list[tuple[str, str, str]]:
    return [(rid, key, encode_state(blob, engine.fingerprint(rid) or ""))
            for rid, key in engine.take_dirty()
            if (blob := engine.export_state(rid, key)) is not None]


def test_state_of_a_rule_changed_while_no_worker_ran_is_dropped_not_restored() -> None:
    """The threshold rule's count changes between save and restore: its windows
    start again (as a SIGHUP reload does), the unchanged rules resume."""
    events = _scenario()
    first = Engine(load_text(ALL_FORMS), lateness_ns=3 * S, track_dirty=True)
    for e in events[:150]:
        first.process(e)
    saved = _saved(first)
    changed = load_text(ALL_FORMS.replace("count: {gte: 5}", "count: {gte: 6}"))
    second = Engine(changed, lateness_ns=3 * S, track_dirty=True)
    assert second.fingerprint("thr") != first.fingerprint("thr")
    assert second.fingerprint("seq") == first.fingerprint("seq")
    restored, dropped = restore_engine(second, saved)
    assert {rid for rid, _, _ in dropped} == {"thr"}
    assert all(reason == "rule changed" for _, _, reason in dropped)
    assert restored == len(saved) - len(dropped)
    assert not second.runners["thr"].states
    assert second.runners["seq"].states == first.runners["seq"].states


def test_a_damaged_saved_state_is_dropped_and_the_rest_restores() -> None:
    events = _scenario()
    rules = load_text(ALL_FORMS)
    whole = Engine(rules, lateness_ns=3 * S)
    expect = [a for e in events for a in whole.process(e)] + whole.advance_watermark(1000 * S)
    first = Engine(rules, lateness_ns=3 * S, track_dirty=True)
    got = [a for e in events[:150] for a in first.process(e)]
    saved = _saved(first)
    fp = first.fingerprint("thr")
    damaged = [("thr", "no-such-key", "zf:" + str(fp) + ":!!!"),
               ("thr", "junk-json", encode_state(b'{"not": "a window"}', fp or "")),
               (ENGINE_KEY, "", encode_state(b'{"wm": "soon"}'))]
    second = Engine(rules, lateness_ns=3 * S, track_dirty=True)
    restored, dropped = restore_engine(second, damaged + saved)
    assert [(rid, key) for rid, key, _ in dropped] == [(r, k) for r, k, _ in damaged]
    assert restored == len(saved)
    got += [a for e in events[150:] for a in second.process(e)] + second.advance_watermark(1000 * S)
    assert ids(got) == ids(expect), "a damaged state left something behind"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([ENGINE_KEY, "seq", "thr", "dst", "miss", "gone"]), json_values,
       st.fixed_dictionaries({"wm": st.integers(), "max_ts": json_values, "buf": json_values}))
def test_import_state_raises_only_its_typed_error_and_changes_nothing_then(
        rule_id: str, junk: object, engine_like: dict) -> None:
    import json

    engine = Engine(load_text(ALL_FORMS), lateness_ns=3 * S, track_dirty=True)
    engine.process(ev("a", 1))

    def snapshot() -> tuple:
        return (engine.watermark, engine.max_ts, list(engine._buffer),
                {rid: dict(r.states) for rid, r in engine.runners.items()})

    for blob in (json.dumps(junk).encode(), json.dumps(engine_like).encode(), b"\xff{"):
        before = snapshot()
        try:
            engine.import_state(rule_id, "k", blob)
        except StateError:
            assert snapshot() == before, "a refused state changed the engine"
