"""A sample of what the service scored, kept for the training/serving skew report.

For a share of the scored account snapshots (``served_log.sample_share`` of the drift policy)
the service appends one JSON line: when, which account and snapshot (``as_of``), which model
and version, the feature values the model read and the probability it answered. No personal
data: account ids and account-level aggregates only, never contacts, texts or request bodies.

Whether a snapshot is logged depends only on its account and snapshot time, so repeated scores
of one snapshot are all logged or none, and the sample is the same across restarts. Logging
never fails a request: an error is logged and the score is still answered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME
from csa.settings import Settings

logger = logging.getLogger(__name__)


def served_dir(settings: Settings) -> Path:
    return settings.data_dir / "monitoring" / "served"


class ServedLog:
    """Appends sampled served scores to ``data/monitoring/served/<model>/<day>.jsonl``."""

    def __init__(self, settings: Settings, sample_share: float) -> None:
        self.folder = served_dir(settings)
        self.sample_share = sample_share
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> ServedLog:
        """The log with the drift policy's sample share (none logged if the policy is invalid)."""
        from csa.errors import ConfigError
        from csa.monitoring.policy import load_policy

        try:
            share = load_policy().served_log.sample_share
        except ConfigError as exc:
            logger.error("served scores are not logged: %s", exc)
            share = 0.0
        return cls(settings, share)

    def sampled(self, account_id: str, as_of: Any) -> bool:
        """Whether this account snapshot belongs to the sample (stable across processes)."""
        if self.sample_share <= 0:
            return False
        digest = hashlib.sha256(f"{account_id}|{as_of}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.sample_share

    def record(
        self,
        model: str,
        version: str | None,
        frame: pd.DataFrame,
        features: list[str],
        probability: np.ndarray,
        known: np.ndarray,
    ) -> int:
        """Append the sampled rows of one scoring call; return how many were written."""
        if self.sample_share <= 0:
            return 0
        try:
            return self._write(model, version, frame, features, probability, known)
        except Exception as exc:  # a full disk must not fail a score
            logger.warning("served scores of csa-%s were not logged: %s", model, exc)
            return 0

    def _write(
        self,
        model: str,
        version: str | None,
        frame: pd.DataFrame,
        features: list[str],
        probability: np.ndarray,
        known: np.ndarray,
    ) -> int:
        now = dt.datetime.now(dt.UTC)
        accounts, times = frame[JOIN_KEY].tolist(), frame[SNAPSHOT_TIME].tolist()
        rows = [
            row
            for row in range(len(frame))
            if known[row] and self.sampled(accounts[row], times[row])
        ]
        if not rows:  # most calls: nothing of this one is in the sample
            return 0
        values = frame[features].iloc[rows].to_dict("records")
        lines = []
        for row, features_of_row in zip(rows, values, strict=True):
            account, as_of = accounts[row], times[row]
            record = {
                "served_at": now.isoformat(),
                JOIN_KEY: account,
                SNAPSHOT_TIME: pd.Timestamp(as_of).isoformat(),
                "model": model,
                "version": version,
                "probability": float(probability[row]),
                "features": {k: _plain(v) for k, v in features_of_row.items()},
            }
            lines.append(json.dumps(record))
        path = self.folder / model / f"{now.date().isoformat()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return len(lines)


def read_served(settings: Settings, model: str) -> pd.DataFrame:
    """Every logged served score of ``model``: one row per line, features as columns."""
    records = list(_records(served_dir(settings) / model))
    if not records:
        return pd.DataFrame()
    frame = pd.json_normalize(records, sep="\x00")
    frame.columns = [c.split("\x00", 1)[1] if c.startswith("features\x00") else c for c in frame]
    frame[SNAPSHOT_TIME] = pd.to_datetime(frame[SNAPSHOT_TIME], utc=True)
    return frame


def _records(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:  # a line cut off by a crash
                continue


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
