"""Quarantine: where rows that break their contract go, with the reason, instead of the lake.

Each ingest run writes one JSON-lines file per source under ``data/quarantine/<source>/``. A line
holds the record's origin (file and line), its original content and every reason it was refused
(column, check, value), so a user can fix the export and ingest it again.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson


class QuarantineLog:
    """Collects one source's refused records during a run; the file appears only when closed."""

    def __init__(self, quarantine_dir: Path, source: str, run_id: str) -> None:
        self.path = quarantine_dir / source / f"{run_id}.jsonl"
        self._partial = self.path.with_suffix(".jsonl.partial")
        self._handle: IO[bytes] | None = None
        self.count = 0

    def add(self, origin: str, original: Any, reasons: list[dict[str, Any]]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self._partial.open("wb")
        record = {"origin": origin, "reasons": reasons, "original": original}
        self._handle.write(orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS))
        self._handle.write(b"\n")
        self.count += 1

    def close(self) -> Path | None:
        """Publish the file (atomically) and return its path, or None when nothing was refused."""
        if self._handle is None:
            return None
        self._handle.close()
        self._handle = None
        self._partial.replace(self.path)
        return self.path

    def __enter__(self) -> QuarantineLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._handle is not None and kind is not None:
            self._handle.close()
            self._partial.unlink(missing_ok=True)
            self._handle = None
