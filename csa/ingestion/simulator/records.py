"""Append-only columnar logs of the events a simulated day produces."""

from __future__ import annotations

import numpy as np


class EventLog:
    """Events appended day by day as arrays, joined into one array per column at the end.

    A day adds a handful of events for a few accounts; appending arrays and concatenating once
    costs far less than growing arrays or building Python objects per event.
    """

    def __init__(self, *columns: str) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
        self._length = 0

    def append(self, rows: int, **values: np.ndarray | float | int | str) -> None:
        """Add ``rows`` events; a scalar value is repeated for every row."""
        if rows == 0:
            return
        if set(values) != set(self._parts):
            raise ValueError(f"an event needs exactly the columns {sorted(self._parts)}")
        for name, value in values.items():
            self._parts[name].append(np.broadcast_to(np.asarray(value), (rows,)).copy())
        self._length += rows

    def __len__(self) -> int:
        return self._length

    def columns(self) -> dict[str, np.ndarray]:
        """Every column as one array, events in the order they were appended."""
        return {
            name: np.concatenate(parts) if parts else np.array([], dtype=np.int64)
            for name, parts in self._parts.items()
        }


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of a sorted array."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)
