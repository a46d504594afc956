"""``csa demo``: the whole pipeline on the embedded default, one stage line each."""

from __future__ import annotations

from typing import Annotated

import typer

from csa.cli.context import console, stage, state
from csa.cli.features import run_apply, run_build, run_dataset, run_materialize
from csa.cli.ingestion import run_ingest, run_simulate


def demo(
    accounts: Annotated[
        int | None, typer.Option(help="Accounts in the simulated company [settings].")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Days of history [settings].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulation [settings].")] = None,
) -> None:
    """Simulate a company, ingest it, build and serve its features, write training sets."""
    from csa.ingestion.simulator import SimulationConfig

    settings = state.settings()
    defaults = settings.simulation
    config = SimulationConfig(
        accounts=accounts if accounts is not None else defaults.accounts,
        days=days if days is not None else defaults.days,
        start=defaults.start,
        seed=seed if seed is not None else defaults.seed,
        scenario=defaults.scenario,
        chunk_accounts=defaults.chunk_accounts,
    )
    datasets = settings.data_dir / "datasets"
    steps = [
        ("simulate", lambda: run_simulate(config, settings.raw_dir)),
        ("ingest", lambda: run_ingest(settings, None, settings.reports_dir / "ingest.json", None)),
        ("features build", lambda: run_build(settings)),
        ("features apply", lambda: run_apply(settings)),
        ("features materialize", lambda: run_materialize(settings)),
        ("dataset churn", lambda: run_dataset(settings, "churn", datasets / "churn.parquet")),
        (
            "dataset expansion",
            lambda: run_dataset(settings, "expansion", datasets / "expansion.parquet"),
        ),
    ]
    for number, (name, run) in enumerate(steps, start=1):
        stage(number, len(steps), name, run())
    console.print(
        f"demo: everything is under {settings.home}; the ingest report is "
        f"{settings.reports_dir / 'ingest.json'}.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``csa demo`` to the app."""
    app.command()(demo)
