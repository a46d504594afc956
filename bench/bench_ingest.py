"""Usage-event ingest throughput: our engine against pandas' JSON-lines reader.

Ours parses, maps, validates against the contract, deduplicates on messageId against the lake
and commits one Delta transaction. The baseline, what a user would write by hand, only reads the
same files with ``pandas.read_json(lines=True, chunksize=...)`` and writes Parquet: no checks,
no dedup. Run: ``python bench/bench_ingest.py [--events 10000000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, report

EVENTS = ["Logged In", "Report Created", "Dashboard Viewed", "API Call Made", "Data Exported"]


def write_events(raw: Path, total: int, per_file: int = 1_000_000) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for start in range(0, total, per_file):
        with (raw / f"usage_events_{start // per_file:04d}.jsonl").open("wb") as handle:
            for n in range(start, min(total, start + per_file)):
                handle.write(
                    orjson.dumps(
                        {
                            "messageId": f"m-{n}",
                            "type": "track",
                            "event": EVENTS[n % 5],
                            "userId": f"USR-{n % 5000}",
                            "timestamp": (
                                f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T10:{n % 60:02d}:00Z"
                            ),
                            "context": {"groupId": f"ACC-{n % 1000:06d}"},
                            "properties": {"count": 1 + n % 3},
                        }
                    )
                    + b"\n"
                )


def run_ours(home: Path) -> float:
    os.environ["CSA_HOME"] = str(home)
    from csa.ingestion.engine import ingest
    from csa.settings import load_settings

    started = time.perf_counter()
    result = ingest(load_settings(home=home), only=["product_usage"]).sources["product_usage"]
    assert result.status == "ok", result.error
    return time.perf_counter() - started


def run_baseline(raw: Path, out: Path) -> float:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(sorted(raw.glob("usage_events_*.jsonl"))):
        for part, chunk in enumerate(pd.read_json(path, lines=True, chunksize=200_000)):
            chunk = pd.concat(
                [
                    chunk.drop(columns=["context", "properties"]),
                    pd.json_normalize(chunk["context"].tolist()),
                ],
                axis=1,
            )
            chunk.to_parquet(out / f"{index}-{part}.parquet")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        print(f"writing {args.events:,} usage events ...")
        write_events(home / "data" / "raw", args.events)
        ours = run_ours(home)
        ours_rss = peak_rss_mb()
        baseline = run_baseline(home / "data" / "raw", home / "baseline")
    report(
        "ingest",
        {
            "seconds": round(ours, 1),
            "events_per_second": round(args.events / ours),
            "peak_rss_mb": round(ours_rss),
        },
        {
            "name": "pandas.read_json(lines=True) + to_parquet, no checks",
            "seconds": round(baseline, 1),
            "events_per_second": round(args.events / baseline),
        },
        baseline / ours,
        "baseline seconds / ours; above 1 means ours is faster",
        {"events": args.events},
    )


if __name__ == "__main__":
    main()
