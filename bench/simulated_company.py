"""A simulated company in a scratch ``CSA_HOME``, run through ingest and the feature store.

Shared by the training benchmarks: each builds its own company with the library's own stages
(simulate, ingest, features build, apply, materialize), so no benchmark reads or writes the
repository's ``data/``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from pathlib import Path

from csa.features import apply_definitions, build_features, materialize_latest
from csa.ingestion.engine import ingest
from csa.ingestion.simulator import SimulationConfig, simulate
from csa.settings import Settings, load_settings

# The demo's company: enough history for matured labels in all three training windows.
DEFAULT_ACCOUNTS = 300
DEFAULT_DAYS = 730
DEFAULT_SEED = 7
START = dt.date(2024, 1, 1)

# Feast warns on every apply of the platform's on-demand view; it is there on purpose.
warnings.filterwarnings("ignore", "On demand feature view is an experimental feature")


def company_settings(home: Path) -> Settings:
    """Local-profile settings rooted at ``home``; ``CSA_HOME`` points there too."""
    os.environ["CSA_HOME"] = str(home)
    return load_settings(profile="local", home=home)


def build_company(
    home: Path,
    accounts: int = DEFAULT_ACCOUNTS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> tuple[Settings, SimulationConfig]:
    """Simulate a company into ``home`` and build its lake and feature store.

    Returns the home's settings and the simulation's configuration (its start and length
    place the ground truth's days).
    """
    settings = company_settings(home)
    config = SimulationConfig(accounts=accounts, days=days, start=START, seed=seed)
    started = time.perf_counter()
    summary = simulate(config, settings.raw_dir)
    result = ingest(settings)
    failed = [name for name, source in result.sources.items() if source.status != "ok"]
    assert not failed, f"ingest failed for {failed}"
    built = build_features(settings)
    apply_definitions(settings)
    materialize_latest(settings)
    print(
        f"  company: {summary.accounts:,} accounts over {days} days, {summary.churned:,} churned, "
        f"{built.snapshots:,} snapshots, built in {time.perf_counter() - started:.1f} s"
    )
    return settings, config
