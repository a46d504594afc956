"""``csa simulate`` and ``csa ingest``: data into the platform."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from csa.cli.context import console, failures_exit, progress_callback, stage, state
from csa.settings import Settings

if TYPE_CHECKING:  # the simulator imports numpy and pyarrow: only when a command runs
    from csa.ingestion.simulator import SimulationConfig


def register(app: typer.Typer) -> None:
    app.command()(simulate)
    app.command()(ingest)


def simulate(
    out: Annotated[Path | None, typer.Option(help="Folder for the exports [data/raw].")] = None,
    accounts: Annotated[int | None, typer.Option(help="Accounts in the company.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed, the same company.")] = None,
    scenario: Annotated[
        str | None, typer.Option(help="baseline, usage-drop or new-segment.")
    ] = None,
    start: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First simulated day.")
    ] = None,
    change_date: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="When the scenario's change starts."),
    ] = None,
) -> None:
    """Write a realistic SaaS company's source exports, plus ground_truth/."""
    from csa.ingestion.simulator import SimulationConfig

    settings = state.settings()
    defaults = settings.simulation
    config = SimulationConfig(
        accounts=accounts if accounts is not None else defaults.accounts,
        days=days if days is not None else defaults.days,
        start=start.date() if start else defaults.start,
        seed=seed if seed is not None else defaults.seed,
        scenario=scenario or defaults.scenario,
        change_date=change_date.date() if change_date else None,
        chunk_accounts=defaults.chunk_accounts,
    )
    stage(1, 1, "simulate", run_simulate(config, out or settings.raw_dir))


def run_simulate(config: SimulationConfig, out_dir: Path) -> str:
    """Simulate the company into ``out_dir``; the stage line's detail."""
    from csa.ingestion.simulator import simulate as run_simulation

    report, bar = progress_callback()
    with failures_exit(), bar:
        summary = run_simulation(config, out_dir, progress=report)
    return (
        f"{summary.accounts:,} accounts, {summary.usage_events:,} usage events, "
        f"{summary.tickets:,} tickets, {summary.churned:,} churned into {out_dir} "
        f"in {summary.seconds:.1f} s"
    )


def ingest(
    raw: Annotated[
        Path | None, typer.Option(help="Folder of the exports ({raw} in sources.yaml).")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the JSON run report here.")] = None,
    source: Annotated[
        list[str] | None, typer.Option(help="Run only this source (repeatable).")
    ] = None,
) -> None:
    """Run the configured connectors into the lake; bad rows go to data/quarantine/."""
    stage(1, 1, "ingest", run_ingest(state.settings(), raw, report, source))


def run_ingest(
    settings: Settings, raw: Path | None, report: Path | None, only: list[str] | None
) -> str:
    """Ingest into the lake, one line per source; exit 1 when a source failed."""
    from csa.ingestion.engine import ingest

    progress, bar = progress_callback()
    with failures_exit(), bar:
        result = ingest(settings, raw_dir=raw, only=only, progress=progress)
    for name, outcome in result.sources.items():
        detail = (
            f"read {outcome.read:,}, accepted {outcome.accepted:,}, "
            f"duplicates {outcome.duplicates:,}, quarantined {outcome.quarantined:,}"
        )
        if outcome.quarantine_path:
            detail += f" -> {outcome.quarantine_path}"
        if outcome.status != "ok":
            detail = f"[red]FAILED[/red] {outcome.error}"
        console.print(f"  {name} -> {outcome.table}: {detail}", highlight=False, soft_wrap=True)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.as_dict(), indent=2))
    failed = [name for name, s in result.sources.items() if s.status != "ok"]
    if failed:
        console.print(f"[red]error:[/red] {len(failed)} source(s) failed: {', '.join(failed)}")
        raise typer.Exit(code=1)
    total = sum(s.accepted for s in result.sources.values())
    return f"{total:,} rows accepted from {len(result.sources)} sources"
