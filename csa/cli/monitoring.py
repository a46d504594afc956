"""``csa monitor``: drift against each champion, the policy's decision, optional retraining."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from csa.cli.context import console, failures_exit, stage, state
from csa.errors import ConfigError
from csa.settings import Settings

MLFLOW_UI_PORT = 5000


def monitor(
    retrain: Annotated[
        bool, typer.Option(help="Act on the drift policy: retrain, gate and promote on a breach.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the pass's JSON report here.")
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Repeat every interval (30m, 1h, 1d) until SIGINT or SIGTERM."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Judge the windows ending on this date (a replay)."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only this model (repeatable).")
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help="Drift policy YAML (default: configs/drift_policy.yaml)."),
    ] = None,
) -> None:
    """Drift report for the latest window of each champion; with --retrain, act on the policy."""
    from csa.monitoring.monitor import parse_every, run_every
    from csa.monitoring.policy import load_policy

    settings = state.settings()
    with failures_exit():
        policy = load_policy(policy_file)
        models = model or policy.models
        for name in models:
            if name not in ("churn", "expansion"):
                raise ConfigError(f"unknown model {name!r}; use churn or expansion.")
        when = _as_of(as_of)
        seconds = parse_every(every) if every else None

    def one_pass() -> None:
        run_monitor(settings, policy, retrain, report, when, models)

    if seconds is None:
        one_pass()
        return
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        console.print(
            f"{signal.Signals(signum).name}: stopping after the pass in progress", highlight=False
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    passes = run_every(one_pass, seconds, stop)
    console.print(f"monitor stopped after {passes} pass(es)", highlight=False)


def run_monitor(
    settings: Settings,
    policy: Any,
    retrain: bool = False,
    report: Path | None = None,
    as_of: Any = None,
    models: list[str] | None = None,
) -> str:
    """One pass with a stage line per model; the last line's detail (for the demo)."""
    from csa.monitoring import monitor as run_pass

    with failures_exit():
        reports = run_pass(settings, policy, retrain=retrain, as_of=as_of, models=models)
    chosen = list(reports)
    for number, name in enumerate(chosen, start=1):
        stage(number, len(chosen), f"monitor {name}", _detail(reports[name]))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        content = {"models": {name: r.to_dict() for name, r in reports.items()}}
        report.write_text(json.dumps(content, indent=2, default=str))
    console.print(dashboard_links(settings), highlight=False, soft_wrap=True)
    return ", ".join(f"{name} {r.decision}" for name, r in reports.items())


def run_demo_pass(settings: Settings, report: Path) -> str:
    """One pass without retraining, for ``csa demo``: the stage line's detail."""
    from csa.monitoring import load_policy
    from csa.monitoring import monitor as run_pass

    with failures_exit():
        reports = run_pass(settings, load_policy())
    report.parent.mkdir(parents=True, exist_ok=True)
    content = {"models": {name: r.to_dict() for name, r in reports.items()}}
    report.write_text(json.dumps(content, indent=2, default=str))
    decisions = ", ".join(
        f"{name} {r.decision} ({len(r.drifted_features)} drifted features)"
        for name, r in reports.items()
    )
    return f"{decisions}; report {report}"


def _detail(result: Any) -> str:
    drifted = result.drifted_features
    shown = ", ".join(drifted[:4]) + (f" and {len(drifted) - 4} more" if len(drifted) > 4 else "")
    drift = f"drift in {len(drifted)} features ({shown})" if drifted else "no drifted feature"
    return f"{drift}; {result.decision}: {result.reason}"


def dashboard_links(settings: Settings) -> str:
    """Where to look: the Evidently workspace and the MLflow store, and how to serve both."""
    from csa.monitoring.dashboard import UI_PORT, workspace_dir

    return (
        f"dashboards (`make ui` serves both over {settings.home}): Evidently "
        f"http://127.0.0.1:{UI_PORT} (workspace {workspace_dir(settings)}), MLflow "
        f"http://127.0.0.1:{MLFLOW_UI_PORT} (experiment csa-monitoring); decisions are in "
        f"{settings.audit_dir / 'monitoring.jsonl'}"
    )


def _as_of(text: str | None) -> Any:
    import pandas as pd

    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is not a date; write it as 2025-06-30.") from None


def register(app: typer.Typer) -> None:
    """Add ``csa monitor`` to the app."""
    app.command()(monitor)
