"""``csa demo``: the whole pipeline on the embedded default, one stage line each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from csa.cli.analytics import run_report
from csa.cli.context import console, stage, state
from csa.cli.features import run_apply, run_build, run_dataset, run_materialize
from csa.cli.ingestion import run_ingest, run_simulate
from csa.cli.monitoring import dashboard_links, run_demo_pass
from csa.cli.training import (
    run_promote,
    run_score,
    run_score_texts,
    run_train,
    run_train_sentiment,
)
from csa.settings import Settings


def demo(
    accounts: Annotated[
        int | None, typer.Option(help="Accounts in the simulated company [settings].")
    ] = None,
    days: Annotated[int | None, typer.Option(help="Days of history [settings].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulation [settings].")] = None,
    serve: Annotated[
        bool, typer.Option(help="End by serving the models (--no-serve stops after scoring).")
    ] = True,
) -> None:
    """Simulate a company, ingest it, train the sentiment model, build its features, train,
    promote, score and serve."""
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
    scores = settings.data_dir / "scores"
    steps = [
        ("simulate", lambda: run_simulate(config, settings.raw_dir)),
        ("ingest", lambda: run_ingest(settings, None, settings.reports_dir / "ingest.json", None)),
        ("train sentiment", lambda: run_train_sentiment(_quick_sentiment(settings))),
        ("promote sentiment", lambda: run_promote(settings, "sentiment")),
        ("score sentiment", lambda: _score_texts(settings)),
        ("features build", lambda: run_build(settings)),
        ("features apply", lambda: run_apply(settings)),
        ("features materialize", lambda: run_materialize(settings)),
        ("dataset churn", lambda: run_dataset(settings, "churn", datasets / "churn.parquet")),
        (
            "dataset expansion",
            lambda: run_dataset(settings, "expansion", datasets / "expansion.parquet"),
        ),
        ("train churn", lambda: run_train(settings, "churn")),
        ("promote churn", lambda: run_promote(settings, "churn")),
        ("train expansion", lambda: run_train(settings, "expansion")),
        ("promote expansion", lambda: run_promote(settings, "expansion")),
        ("score churn", lambda: _score_champion(settings, "churn", scores)),
        ("score expansion", lambda: _score_champion(settings, "expansion", scores)),
        ("report", lambda: run_report(settings, settings.reports_dir)),
        ("monitor", lambda: run_demo_pass(settings, settings.reports_dir / "monitoring.json")),
    ]
    for number, (name, run) in enumerate(steps, start=1):
        stage(number, len(steps), name, run())
    if (scores / "churn.parquet").exists():
        _print_riskiest(scores / "churn.parquet")
    console.print(
        f"demo: everything is under {settings.home}; the ingest report is "
        f"{settings.reports_dir / 'ingest.json'}.",
        highlight=False,
    )
    console.print(dashboard_links(settings), highlight=False, soft_wrap=True)
    if serve:
        _serve(settings)


def _serve(settings: Settings) -> None:
    """Create a demo key, print example calls, and serve until interrupted."""
    from csa.cli.serving import serve
    from csa.serving.access import KeyStore
    from csa.training.scoring import active_accounts

    key, key_id = KeyStore(settings).create("admin", "demo")
    account = (active_accounts(settings) or ["ACC-000001"])[0]
    base = f"http://{settings.serving.host}:{settings.serving.port}"
    console.print(
        f"demo key (admin, id {key_id}; more with `csa keys create --role csm`):\n  {key}\n"
        "try, once the server below is up:\n"
        f"  curl -s {base}/readyz\n"
        f"  curl -s -X POST {base}/churn -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d '{{\"account_ids\": [\"{account}\"]}}'\n"
        f"  curl -s -X POST {base}/account -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d '{{\"account_id\": \"{account}\"}}'\n"
        f"  curl -s -X POST {base}/sentiment -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' "
        f'-d \'{{"texts": ["The export is broken again and support is slow."]}}\'',
        highlight=False,
        soft_wrap=True,
    )
    serve(host=None, port=None)


def register(app: typer.Typer) -> None:
    """Add ``csa demo`` to the app."""
    app.command()(demo)


def _quick_sentiment(settings: Settings) -> Settings:
    """The settings with the demo's shorter sentiment training."""
    quick = settings.model_copy(deep=True)
    quick.training.sentiment.max_train_texts = settings.demo.sentiment_max_train_texts
    quick.training.sentiment.max_length = settings.demo.sentiment_max_length
    return quick


def _score_texts(settings: Settings) -> str:
    """Score the lake's texts, or say why not (the gate refused the sentiment model)."""
    from csa.training.registry import CHAMPION, aliases_of, registered_name

    if CHAMPION not in aliases_of(settings, registered_name("sentiment")):
        return "skipped: csa-sentiment has no champion; the sentiment features stay empty"
    return run_score_texts(settings)


def _score_champion(settings: Settings, model: str, folder: Path) -> str:
    """Score with the champion, or say why there is none (the gate refused the model)."""
    from csa.training.registry import CHAMPION, aliases_of, registered_name

    if CHAMPION not in aliases_of(settings, registered_name(model)):
        return f"skipped: csa-{model} has no champion (the gate's reason is on the line above)"
    return run_score(settings, model, folder / f"{model}.parquet")


def _print_riskiest(path: Path, count: int = 5) -> None:
    """The accounts most likely to churn, each with its three strongest drivers."""
    import json

    import pandas as pd

    scored = pd.read_parquet(path).head(count)
    console.print("riskiest accounts (churn within the horizon):", highlight=False)
    for row in scored.itertuples(index=False):
        drivers = json.loads(row.drivers)[:3]
        reasons = "; ".join(
            f"{d['description'].rstrip('.')} = {_short(d['value'])} ({d['contribution']:+.2f})"
            for d in drivers
        )
        console.print(
            f"  {row.account_id}  {row.probability:.0%} ({row.risk_band})  {reasons}",
            highlight=False,
        )


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
