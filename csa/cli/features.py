"""``csa features build | apply | materialize`` and ``csa dataset churn | expansion``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csa.cli.context import failures_exit, stage, state
from csa.settings import Settings

features_app = typer.Typer(
    name="features",
    help="Lake → feature tables → Feast registry → online store.",
    no_args_is_help=True,
)


@features_app.command("build")
def build() -> None:
    """Compute account features and labels for every snapshot from the lake."""
    stage(1, 1, "build", run_build(state.settings()))


def run_build(settings: Settings) -> str:
    """Build the feature tables; the stage line's detail."""
    from csa.features.build import build_features

    with failures_exit():
        result = build_features(settings)
    tables = ", ".join(f"{name} {rows:,}" for name, rows in result.rows.items())
    return (
        f"{result.snapshots:,} snapshots of {result.accounts:,} accounts ({tables}) "
        f"in {result.seconds:.1f} s"
    )


@features_app.command("apply")
def apply() -> None:
    """Register the entity, feature views and services in the Feast registry."""
    stage(1, 1, "apply", run_apply(state.settings()))


def run_apply(settings: Settings) -> str:
    """Apply the Feast definitions; the stage line's detail."""
    from csa.features.store import apply_definitions

    with failures_exit():
        result = apply_definitions(settings)
    return f"{result.objects} Feast objects ({settings.profile} profile) in {result.seconds:.1f} s"


@features_app.command("materialize")
def materialize() -> None:
    """Write every account's latest feature values into the online store."""
    stage(1, 1, "materialize", run_materialize(state.settings()))


def run_materialize(settings: Settings) -> str:
    """Materialize the latest values online; the stage line's detail."""
    from csa.features.store import materialize_latest

    with failures_exit():
        result = materialize_latest(settings)
    return f"{result.total_rows:,} rows into the online store in {result.seconds:.1f} s"


def dataset(
    model: Annotated[str, typer.Argument(help="churn or expansion.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
) -> None:
    """Point-in-time training set for a model, through Feast's historical retrieval."""
    stage(1, 1, "dataset", run_dataset(state.settings(), model, out))


def run_dataset(settings: Settings, model: str, out: Path) -> str:
    """Write a model's training set; the stage line's detail."""
    from csa.features.dataset import write_dataset

    with failures_exit():
        result = write_dataset(settings, model, out)
    return (
        f"{result.rows:,} rows ({result.positives:,} positive) into {result.path} "
        f"in {result.seconds:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Add the feature commands to the ``csa`` app."""
    app.add_typer(features_app, name="features")
    app.command("dataset")(dataset)
