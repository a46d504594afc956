"""The append-only audit log: who decided or read what, when, and why.

Each kind of record (``promotions``, and later ``access``) is one JSON-lines file under
``<home>/data/audit/``. Records are appended with ``O_APPEND`` and flushed to disk before the
call returns, so a crash can cut off at most the record being written, never an earlier one.
Nothing here rewrites or deletes a line.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from pathlib import Path
from typing import Any

from csa.settings import Settings


def actor() -> str:
    """Who is acting: ``CSA_ACTOR`` when set (a CI job, a service), else the OS user."""
    return os.environ.get("CSA_ACTOR") or getpass.getuser()


def audit_path(settings: Settings, kind: str) -> Path:
    return settings.audit_dir / f"{kind}.jsonl"


def append_record(settings: Settings, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """Append ``record`` (stamped with ``at`` and ``actor`` unless given) to the ``kind`` log."""
    stamped = {"at": dt.datetime.now(dt.UTC).isoformat(), "actor": actor(), **record}
    line = (json.dumps(stamped, default=str, sort_keys=False) + "\n").encode()
    path = audit_path(settings, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return stamped


def read_records(settings: Settings, kind: str) -> list[dict[str, Any]]:
    """Every record of a log, oldest first; a line cut off by a crash is skipped."""
    path = audit_path(settings, kind)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
