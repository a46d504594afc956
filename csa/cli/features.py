"""``csa features build | apply | materialize`` and ``csa dataset churn | expansion``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csa.cli.context import failures_exit, stage, state

features_app = typer.Typer(
    name="features",
    help="Lake → feature tables → Feast registry → online store.",
    no_args_is_help=True,
)


@features_app.command("build")
def build() -> None:
    """Compute account features and labels for every snapshot from the lake."""
    from csa.features.build import build_features

    settings = state.settings()
    with failures_exit():
        result = build_features(settings)
    tables = ", ".join(f"{name} {rows:,}" for name, rows in result.rows.items())
    stage(
        1,
        1,
        "build",
        f"{result.snapshots:,} snapshots of {result.accounts:,} accounts ({tables}) "
        f"in {result.seconds:.1f} s",
    )


@features_app.command("apply")
def apply() -> None:
    """Register the entity, feature views and services in the Feast registry."""
    from csa.features.store import apply_definitions

    settings = state.settings()
    with failures_exit():
        result = apply_definitions(settings)
    stage(
        1,
        1,
        "apply",
        f"{result.objects} Feast objects ({settings.profile} profile) in {result.seconds:.1f} s",
    )


@features_app.command("materialize")
def materialize() -> None:
    """Write every account's latest feature values into the online store."""
    from csa.features.store import materialize_latest

    settings = state.settings()
    with failures_exit():
        result = materialize_latest(settings)
    stage(
        1,
        1,
        "materialize",
        f"{result.total_rows:,} rows into the online store in {result.seconds:.1f} s",
    )


def dataset(
    model: Annotated[str, typer.Argument(help="churn or expansion.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
) -> None:
    """Point-in-time training set for a model, through Feast's historical retrieval."""
    from csa.features.dataset import write_dataset

    settings = state.settings()
    with failures_exit():
        result = write_dataset(settings, model, out)
    stage(
        1,
        1,
        "dataset",
        f"{result.rows:,} rows ({result.positives:,} positive) into {result.path} "
        f"in {result.seconds:.1f} s",
    )


def register(app: typer.Typer) -> None:
    """Add the feature commands to the ``csa`` app."""
    app.add_typer(features_app, name="features")
    app.command("dataset")(dataset)
