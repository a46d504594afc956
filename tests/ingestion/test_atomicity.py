"""A crash during ingest leaves each table as it was before or as it is after, never half."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from csa.ingestion.engine import ingest
from csa.ingestion.lake import read_table
from csa.settings import Settings

EVENTS = 300_000


def _write_usage(path: Path, count: int, prefix: str) -> None:
    with path.open("wb") as handle:
        for n in range(count):
            handle.write(
                orjson.dumps(
                    {
                        "messageId": f"{prefix}-{n}",
                        "type": "track",
                        "event": "Logged In",
                        "userId": f"USR-{n % 50}",
                        "timestamp": "2024-03-01T10:00:00Z",
                        "context": {"groupId": f"ACC-{n % 7}"},
                        "properties": {"count": 1},
                    }
                )
                + b"\n"
            )


def _parts(table_dir: Path) -> set[str]:
    # Data files, committed or in flight (Delta streams a new file under a temporary name).
    return {p.name for p in table_dir.iterdir() if p.is_file()}


def _commits(table_dir: Path) -> int:
    return len(list((table_dir / "_delta_log").glob("*.json")))


@pytest.mark.slow
def test_killing_ingest_mid_write_leaves_the_table_as_before(settings: Settings) -> None:
    raw = settings.raw_dir
    raw.mkdir(parents=True)
    _write_usage(raw / "usage_events_0.jsonl", 1000, "seed")
    ingest(settings, only=["product_usage"])
    table_dir = settings.lake_dir / "usage_events"
    env = {**os.environ, "CSA_HOME": str(settings.home)}

    caught_mid_write = False
    for attempt in range(1, 6):
        before_rows = len(read_table(settings.lake_dir, "usage_events"))
        before_parts, before_commits = _parts(table_dir), _commits(table_dir)
        _write_usage(raw / f"usage_events_{attempt}.jsonl", EVENTS, f"run{attempt}")
        process = subprocess.Popen(
            [sys.executable, "-m", "csa", "ingest", "--source", "product_usage"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Freeze the process as soon as new table data appears; kill it only if that data is
        # not committed yet, so the kill lands mid-write rather than after the commit.
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if _parts(table_dir) - before_parts:
                process.send_signal(signal.SIGSTOP)
                caught_mid_write = _commits(table_dir) == before_commits
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        process.wait(timeout=30)

        rows = len(read_table(settings.lake_dir, "usage_events"))
        assert rows in (before_rows, before_rows + EVENTS), "a half-written table is visible"
        if caught_mid_write:
            assert rows == before_rows
            break

    assert caught_mid_write, "no attempt was killed mid-write; enlarge EVENTS"
    finished = ingest(settings, only=["product_usage"]).sources["product_usage"]
    assert len(read_table(settings.lake_dir, "usage_events")) == 1000 + attempt * EVENTS
    assert finished.accepted == EVENTS
