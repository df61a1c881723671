"""Offline replay through the real enricher and engine: raw and enriched
recordings of one stream give the same alerts with the same ids, every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eunomia.processors.enrich.enricher import Enricher
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.rules import alert_id, load_text
from eunomia.schemas import AvroCodec
from tests.support.recordings import ENRICHED, RULES, attack_stream, write_stream


def _alerts(path: Path, rules_file: Path) -> list[tuple[str, str, str]]:
    res = replay_offline(path, [rules_file])
    return [(a["rule_id"], a["group_key"], a["alert_id"]) for a in res.alerts]


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


def test_raw_recording_is_enriched_and_alerts_are_deterministic(tmp_path: Path, rules_file: Path) -> None:
    raw = tmp_path / "raw.avro"
    write_stream(raw, attack_stream(), garbage_at=4)
    res = replay_offline(raw, [rules_file])
    assert res.mode == "raw"
    assert res.messages["undecodable"] == 1 and res.messages["container"] == 1
    got = sorted((a["rule_id"], a["event_count"]) for a in res.alerts)
    assert got == [("test_port_scan", 5), ("test_reverse_shell", 2),
                   ("test_shell_in_container", 1), ("test_shell_in_container", 1)]
    shell = [a for a in res.alerts if a["rule_id"] == "test_shell_in_container"]
    # the container record came after the shell's first event: held, then enriched with it
    assert {a["container_name"] for a in shell} == {"web"}
    rev = next(a for a in res.alerts if a["rule_id"] == "test_reverse_shell")
    assert rev["alert_id"] == alert_id("test_reverse_shell", rev["group_key"], "h1:b1:e2")
    assert _alerts(raw, rules_file) == _alerts(raw, rules_file)


def test_enriched_recording_gives_the_same_alert_ids(tmp_path: Path, rules_file: Path) -> None:
    """Enrich the stream as the live worker does (one Enricher, Avro out), record
    that, replay it: the ids equal those of the raw recording's offline run."""
    codec = AvroCodec()
    enricher = Enricher()
    stream = []
    for topic, key, rec, _schema in attack_stream():
        outs = (enricher.on_container(key.decode(), rec) if topic.endswith("containers")
                else enricher.on_raw_event(rec))
        stream += [(ENRICHED, k.encode(), e, "enriched_event") for k, e in outs]
    for k in list(enricher.pending):
        stream += [(ENRICHED, kk.encode(), e, "enriched_event") for kk, e in enricher.release_key(k)]
    enriched, raw = tmp_path / "enriched.avro", tmp_path / "raw.avro"
    write_stream(enriched, stream, codec)
    write_stream(raw, attack_stream(), codec)
    res = replay_offline(enriched, load_text(RULES))
    assert res.mode == "enriched" and res.events == len(stream)
    assert sorted(_alerts(enriched, rules_file)) == sorted(_alerts(raw, rules_file))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eunomia", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_cli_expectations_pass_and_fail_with_a_diff(tmp_path: Path, rules_file: Path) -> None:
    raw = tmp_path / "raw.avro"
    write_stream(raw, attack_stream())
    good = tmp_path / "good.yaml"
    good.write_text("alerts:\n  - {rule: test_shell_in_container, count: 2}\n"
                    "  - {rule: test_reverse_shell, group_key: 'h1:b1:*', count: 1}\n"
                    "  - {rule: test_port_scan}\n")
    r = _cli("replay", str(raw), "--rules", str(rules_file), "--expect", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test_reverse_shell" in r.stdout and "alerts match" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  - {rule: test_shell_in_container, count: 3}\n"
                   "  - {rule: test_kernel_module}\n")
    r = _cli("replay", str(raw), "--rules", str(rules_file), "--expect", str(bad))
    assert r.returncode == 1
    for text in ("count differs", "missing", "unexpected", "test_port_scan", "test_kernel_module"):
        assert text in r.stderr, r.stderr
    r = _cli("replay", str(raw), "--rules", str(rules_file), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["alerts"]) == 4 and doc["events"] > 0
