"""Simulator throughput and memory: 100,000 accounts over two years, against a plain writer.

Ours is ``csa.ingestion.simulator.simulate`` end to end: latent health, usage, billing, tickets
with review text, NPS and ground truth, chunk by chunk. The baseline, what one would write by
hand, does no simulation at all: it serialises the same number of ``track`` calls as chunk 0 of
ours produced, one ``json.dumps`` per event, into a JSON-lines file. The ratio compares events
per second; memory is reported as peak RSS, which must not grow with the number of accounts.

The full run writes about 140 GB of usage events, more than most disks hold, so each chunk's
usage files are measured and deleted once the chunk is done (``--keep`` keeps them). Run:
``python bench/bench_simulate.py [--accounts 100000] [--days 730]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, report

from csa.ingestion.simulator import SimulationConfig, simulate
from csa.ingestion.simulator.exports import USAGE_GLOB
from csa.ingestion.simulator.usage import EVENT_NAMES


class UsageSweeper:
    """Counts the bytes and lines of finished usage files, then deletes them."""

    def __init__(self, out_dir: Path, keep: bool) -> None:
        self.out_dir, self.keep = out_dir, keep
        self.bytes = 0
        self.first_chunk_events = 0
        self.chunks = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        files = sorted(self.out_dir.glob(USAGE_GLOB))
        if self.chunks == 0:
            self.first_chunk_events = sum(_lines(path) for path in files)
        self.chunks += 1
        for path in files:
            self.bytes += path.stat().st_size
            if not self.keep:
                path.unlink()
        print(f"  chunk {self.chunks}: {done:,}/{total:,} accounts", flush=True)


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def run_baseline(out: Path, events: int) -> float:
    started = time.perf_counter()
    day = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with out.open("w") as handle:
        for n in range(events):
            record = {
                "messageId": f"m-{n:012d}",
                "type": "track",
                "event": EVENT_NAMES[n % len(EVENT_NAMES)],
                "userId": f"USR-{n % 100_000:07d}",
                "timestamp": (day + dt.timedelta(seconds=n % 63_072_000)).isoformat(),
                "context": {"groupId": f"ACC-{n % 2000:06d}"},
                "properties": {"count": 1 + n % 3},
            }
            handle.write(json.dumps(record) + "\n")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--chunk-accounts", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the usage files")
    args = parser.parse_args()
    config = SimulationConfig(
        accounts=args.accounts, days=args.days, chunk_accounts=args.chunk_accounts
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "raw"
        sweeper = UsageSweeper(out, args.keep)
        print(f"simulating {args.accounts:,} accounts over {args.days} days ...")
        summary = simulate(config, out, progress=sweeper)
        ours_rss = peak_rss_mb()
        baseline_events = sweeper.first_chunk_events
        print(f"baseline: {baseline_events:,} events with json.dumps ...")
        baseline = run_baseline(Path(folder) / "baseline.jsonl", baseline_events)
    ours_rate = summary.usage_events / summary.seconds
    baseline_rate = baseline_events / baseline
    report(
        "simulate",
        {
            "accounts": summary.accounts,
            "days": args.days,
            "seconds": round(summary.seconds, 1),
            "usage_events": summary.usage_events,
            "events_per_second": round(ours_rate),
            "usage_gb": round(sweeper.bytes / 1e9, 1),
            "peak_rss_mb": round(ours_rss),
            "tickets": summary.tickets,
            "churned": summary.churned,
        },
        {
            "name": "json.dumps per event into JSON lines, no simulation",
            "events": baseline_events,
            "seconds": round(baseline, 1),
            "events_per_second": round(baseline_rate),
        },
        ours_rate / baseline_rate,
        "our events/s over the baseline's; above 1 means ours writes faster",
    )


if __name__ == "__main__":
    main()
