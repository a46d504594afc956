"""Shared by the benchmarks: where results go and how they are printed."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Read once at import: a benchmark may point CSA_HOME at a scratch home while it runs, and its
# results must still land where the user looks for them.
REPORTS_DIR = Path(os.environ.get("CSA_HOME", REPO_ROOT)) / "reports" / "bench"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(
    name: str,
    ours: dict[str, Any],
    baseline: dict[str, Any],
    ratio: float,
    ratio_meaning: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Print our figures, the baseline's and their ratio; write them to reports/bench/NAME.json."""
    out = REPORTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "ours": ours,
        "baseline": baseline,
        "ratio": round(ratio, 3),
        "ratio_meaning": ratio_meaning,
        **(extra or {}),
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"  ours:     {ours}")
    print(f"  baseline: {baseline}")
    print(f"  ratio:    {ratio:.2f} ({ratio_meaning})")
    print(f"  written:  {out}")
    return out
