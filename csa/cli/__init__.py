"""The ``csa`` command line. Logging is configured here and nowhere else.

Each area of the platform adds its commands from its own module (``ingestion``, ``features``);
this module owns the app, global options and the translation of errors into exit codes.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from csa.cli.context import state

app = typer.Typer(
    name="csa",
    help="Customer Success Automation: data in, churn and expansion scores out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


@app.callback()
def main(
    profile: Annotated[
        str | None, typer.Option(help="Settings profile: local or production (CSA_PROFILE).")
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="Root of everything the platform writes (CSA_HOME).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug lines.")] = False,
) -> None:
    """Customer Success Automation: data in, churn and expansion scores out."""
    _configure_logging(verbose)
    state.profile = profile
    state.home = home


def _configure_logging(verbose: bool) -> None:
    # Quiet third-party chatter at INFO; our own stages log one line each.
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    logging.getLogger("csa").setLevel(level)
    # MLflow attaches its own handler and reports database migrations at INFO.
    logging.getLogger("mlflow").setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose:
        # Third-party deprecation and "experimental API" notices are not the user's to act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def _register_commands() -> None:
    from csa.cli import analytics, demo, features, ingestion, monitoring, serving, training

    ingestion.register(app)
    features.register(app)
    training.register(app)
    serving.register(app)
    demo.register(app)
    analytics.register(app)
    monitoring.register(app)


_register_commands()
