"""Codec overhead: our single-object encode/decode against bare fastavro
schemaless_writer/reader on the same records in the same run (goal: ratio >= 0.8)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Figure, bench_args, best_rate, report
from eunomia.schemas import AvroCodec
from tests.avro_samples import samples


def main() -> None:
    args = bench_args(__doc__ or "").parse_args()
    codec = AvroCodec()
    n = 20_000 if args.quick else 100_000
    figures = []
    for name in ("raw_event", "enriched_event"):
        parsed = codec.store.parsed(name)
        base = samples(parsed)
        records = [base[i % len(base)] for i in range(n)]

        def bare_encode(records=records, parsed=parsed) -> int:
            out = []
            for r in records:
                buf = io.BytesIO()
                schemaless_writer(buf, parsed, r)
                out.append(buf.getvalue())
            return len(out)

        def our_encode(records=records, name=name) -> int:
            enc = codec.encode
            return len([enc(name, r) for r in records])

        bodies = []
        for r in records:
            buf = io.BytesIO()
            schemaless_writer(buf, parsed, r)
            bodies.append(buf.getvalue())
        framed = [codec.encode(name, r) for r in records]

        def bare_decode(bodies=bodies, parsed=parsed) -> int:
            return len([schemaless_reader(io.BytesIO(b), parsed, None) for b in bodies])

        def our_decode(framed=framed, name=name) -> int:
            dec = codec.decode
            return len([dec(b, name) for b in framed])

        # interleave ours and baseline so drift of a noisy machine hits both
        be, oe, bd, od = 0.0, 0.0, 0.0, 0.0
        for _ in range(3):
            be = max(be, best_rate(bare_encode, 1))
            oe = max(oe, best_rate(our_encode, 1))
            bd = max(bd, best_rate(bare_decode, 1))
            od = max(od, best_rate(our_decode, 1))
        figures.append(Figure("codec", f"encode {name}", oe, be, "fastavro schemaless_writer",
                              unit="msg/s", goal=">= 0.8"))
        figures.append(Figure("codec", f"decode {name}", od, bd, "fastavro schemaless_reader",
                              unit="msg/s", goal=">= 0.8"))
    report(figures, args.json)


if __name__ == "__main__":
    main()
