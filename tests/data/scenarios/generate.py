"""Write the generated part of the scenario corpus: for every rule of the
default pack, its attack and its near miss (the cases of
tests/unit/rules/test_rules_pack.py) as recordings of ``enriched.events``.

These are synthetic: the rule pack's own test cases, recorded so they go
through the recording format and ``replay --rules`` like a real capture. The
``captured-*`` recordings next to them come from real containers (see
README.md). Re-run after changing a case:

    .venv/bin/python tests/data/scenarios/generate.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from eunomia.processors.replay.recording import RecordedMessage, RecordingWriter  # noqa: E402
from eunomia.schemas import AvroCodec  # noqa: E402
from tests.unit.rules.test_rules_pack import CASES  # noqa: E402

TOPIC = "eunomia.enriched.events"


def write(path: Path, events: list[dict]) -> None:
    codec = AvroCodec()
    with RecordingWriter(path, [TOPIC], logical={TOPIC: "enriched.events"}, codec="null") as w:
        for i, e in enumerate(sorted(events, key=lambda e: e["event"]["ts_ns"])):
            key = f"{e['host']['id']}/{e['container']['id']}".encode()
            w.write(RecordedMessage(TOPIC, 0, i, 1_700_000_000_000 + i,
                                    codec.encode("enriched_event", e), key))


def main() -> None:
    for old in HERE.glob("gen-*.avro"):
        old.unlink()
    for rule_id, (attack, near_miss) in sorted(CASES.items()):
        write(HERE / f"gen-{rule_id}-attack.avro", attack)
        write(HERE / f"gen-{rule_id}-nearmiss.avro", near_miss)
    print(f"wrote {2 * len(CASES)} recordings to {HERE}")


if __name__ == "__main__":
    main()
