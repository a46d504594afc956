"""``csa train``, ``csa promote``, ``csa models`` and ``csa score``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from csa.cli.context import console, failures_exit, progress_callback, stage, state
from csa.errors import ConfigError
from csa.settings import Settings

ACCOUNT_MODELS = ("churn", "expansion")
TRAINED_MODELS = (*ACCOUNT_MODELS, "sentiment")


def _check_model(model: str, known: tuple[str, ...] = ACCOUNT_MODELS) -> None:
    if model not in known:
        with failures_exit():
            raise ConfigError(f"unknown model {model!r}; use one of: {', '.join(known)}.")


def train(
    model: Annotated[str, typer.Argument(help="churn, expansion or sentiment.")],
    trials: Annotated[int | None, typer.Option(help="Optuna trials [training.trials].")] = None,
    metrics_out: Annotated[
        Path | None, typer.Option("--metrics-out", help="Write the test metrics as JSON.")
    ] = None,
    predictions_out: Annotated[
        Path | None,
        typer.Option(
            "--predictions-out", help="Write the test rows' probabilities (.csv/.parquet)."
        ),
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Train on your own labelled table (CSV or Parquet).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column of --table.")] = None,
    id_column: Annotated[
        str | None, typer.Option("--id", help="Account id column of --table.")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option("--time", help="Snapshot time column: split by time.")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="The label value that means positive (if not 0/1).")
    ] = None,
    test_table: Annotated[
        Path | None, typer.Option("--test-table", help="Evaluate on this table instead of a split.")
    ] = None,
    text_column: Annotated[
        str | None, typer.Option("--text-column", help="Text column of --table (sentiment).")
    ] = None,
) -> None:
    """Train, calibrate and evaluate a model (sentiment: fine-tuned); register the challenger."""
    _check_model(model, TRAINED_MODELS)
    settings = state.settings()
    if model == "sentiment":
        with failures_exit():
            unused = {"--trials": trials, "--id": id_column, "--time": time_column}
            given = [option for option, value in unused.items() if value is not None]
            if given:
                raise ConfigError(
                    f"{', '.join(given)} apply to churn and expansion only; drop them for "
                    "sentiment."
                )
        detail = run_train_sentiment(
            settings, metrics_out, predictions_out, table, text_column, label, positive, test_table
        )
        stage(1, 1, "train sentiment", detail)
        return
    stage(1, 1, f"train {model}", run_train(
        settings, model, trials, metrics_out, predictions_out,
        table, label, id_column, time_column, positive, test_table,
    ))  # fmt: skip


def run_train(
    settings: Settings,
    model: str,
    trials: int | None = None,
    metrics_out: Path | None = None,
    predictions_out: Path | None = None,
    table: Path | None = None,
    label: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    positive: str | None = None,
    test_table: Path | None = None,
) -> str:
    """Train and register ``model``; the stage line's detail."""
    from csa.training import read_user_table, train_model

    with failures_exit():
        own = test = None
        if table is not None:
            if not label or not id_column:
                raise ConfigError("--table needs --label COL and --id COL naming its columns.")
            own = read_user_table(table, label, id_column, time_column, positive)
            if test_table is not None:
                test = read_user_table(test_table, label, id_column, time_column, positive)
        elif test_table is not None:
            raise ConfigError(
                "--test-table goes with --table; without it, the test window is time."
            )
        result = train_model(settings, model, own, test, trials=trials)
        if metrics_out is not None:
            metrics_out.parent.mkdir(parents=True, exist_ok=True)
            metrics_out.write_text(json.dumps(result.metrics_record(), indent=2))
        if predictions_out is not None:
            _write_frame(result.predictions, predictions_out)
    m = result.metrics
    return (
        f"csa-{model} version {result.version} (challenger): test ROC AUC {m['roc_auc']:.3f}, "
        f"PR AUC {m['pr_auc']:.3f}, ECE {m['ece']:.3f}, {result.windows['n_train']:,} train / "
        f"{result.windows['n_test']:,} test rows, {len(result.tuning.trials)} trials "
        f"({result.tuning.pruned} pruned) in {result.seconds:.1f} s"
    )


def run_train_sentiment(
    settings: Settings,
    metrics_out: Path | None = None,
    predictions_out: Path | None = None,
    table: Path | None = None,
    text_column: str | None = None,
    label: str | None = None,
    positive: str | None = None,
    test_table: Path | None = None,
) -> str:
    """Fine-tune and register the sentiment model; the stage line's detail."""
    from csa.training.sentiment import read_text_table, train_sentiment

    with failures_exit():
        own = test = None
        if table is not None:
            if not text_column or not label:
                raise ConfigError(
                    "--table needs --text-column COL and --label COL naming its columns."
                )
            own = read_text_table(table, text_column, label, positive)
            if test_table is not None:
                test = read_text_table(test_table, text_column, label, positive)
        elif test_table is not None:
            raise ConfigError(
                "--test-table goes with --table; without it, the bundled review corpus' test "
                "texts are used."
            )
        report, bar = progress_callback()
        with bar:
            result = train_sentiment(settings, own, test, progress=report)
        if metrics_out is not None:
            metrics_out.parent.mkdir(parents=True, exist_ok=True)
            metrics_out.write_text(json.dumps(result.metrics_record(), indent=2))
        if predictions_out is not None:
            _write_frame(result.predictions, predictions_out)
    m = result.metrics
    return (
        f"csa-sentiment version {result.version} (challenger): test ROC AUC {m['roc_auc']:.3f} "
        f"(TF-IDF baseline {m['baseline_roc_auc']:.3f}), accuracy {m['accuracy']:.3f}, "
        f"macro F1 {m['macro_f1']:.3f}, {result.counts['n_train']:,} train / "
        f"{result.counts['n_test']:,} test texts in {result.seconds:.1f} s"
    )


def _write_frame(frame: object, out: Path) -> None:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"cannot write {out}: use a .csv or .parquet file name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)


def promote(
    model: Annotated[str, typer.Argument(help="churn, expansion or sentiment.")],
    version: Annotated[
        str | None,
        typer.Option(help="Version to promote [the challenger]; an older one rolls back."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Promote even if the gate refuses.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --force).")] = None,
) -> None:
    """Make the challenger (or --version) the champion if the gate finds it better."""
    _check_model(model, TRAINED_MODELS)
    settings = state.settings()
    detail = run_promote(settings, model, version, force, reason)
    stage(1, 1, f"promote {model}", detail)


def run_promote(
    settings: Settings,
    model: str,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> str:
    """Run the gate; the stage line's detail."""
    from csa.training.promotion import promote as gate

    with failures_exit():
        decision = gate(settings, model, version, force, reason)
    verdict = "promoted to champion" if decision.promoted else "refused"
    return f"csa-{model} version {decision.candidate} {verdict}: {decision.reason}"


def models() -> None:
    """Registered models, their versions, aliases and headline metrics."""
    from csa.training.registry import list_versions, registered_name

    settings = state.settings()
    table = Table("model", "version", "aliases", "ROC AUC", "ECE", "gate", "trained on")
    with failures_exit():
        for model in TRAINED_MODELS:
            for info in list_versions(settings, registered_name(model)):
                table.add_row(
                    info.name,
                    info.version,
                    ", ".join(sorted(info.aliases)),
                    info.tags.get("roc_auc", ""),
                    info.tags.get("ece", ""),
                    info.tags.get("csa.gate.last_decision", ""),
                    info.tags.get("source", ""),
                )
    if table.row_count == 0:
        console.print("no models registered yet; train one with `csa train churn`.")
        return
    # The listing is the command's output: stdout, wide enough that rows do not wrap.
    Console(width=160).print(table)


def score(
    model: Annotated[str, typer.Argument(help="churn, expansion or sentiment.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    accounts: Annotated[
        Path | None,
        typer.Option(help="File of account ids (one a line, or a CSV with account_id) [all]."),
    ] = None,
) -> None:
    """Score every active account (or --accounts) with the champion, with drivers.

    ``sentiment`` scores every ticket body and survey comment of the lake instead (only texts
    the champion has not seen are encoded) and writes one row per text.
    """
    _check_model(model, TRAINED_MODELS)
    settings = state.settings()
    if model == "sentiment":
        if accounts is not None:
            with failures_exit():
                raise ConfigError(
                    "--accounts applies to churn and expansion; sentiment scores texts."
                )
        stage(1, 1, "score sentiment", run_score_texts(settings, out))
        return
    stage(1, 1, f"score {model}", run_score(settings, model, out, accounts))


def run_score_texts(settings: Settings, out: Path | None = None) -> str:
    """Score the lake's texts with the sentiment champion; the stage line's detail."""
    from csa.features.text_sentiment import read_text_scores, score_lake_texts

    report, bar = progress_callback()
    with failures_exit(), bar:
        result = score_lake_texts(settings, progress=report)
        if out is not None:
            _write_frame(read_text_scores(settings), out)
    rate = result.encoded / result.seconds if result.seconds else 0.0
    where = out if out is not None else result.path
    return (
        f"{result.texts:,} texts by version {result.model_version} into {where}: "
        f"{result.encoded:,} encoded ({rate:,.0f}/s), {result.cached:,} from the cache, "
        f"in {result.seconds:.1f} s"
    )


def run_score(settings: Settings, model: str, out: Path, accounts: Path | None = None) -> str:
    """Batch-score accounts; the stage line's detail."""
    from csa.training.scoring import score_accounts

    with failures_exit():
        ids = _read_accounts(accounts) if accounts is not None else None
        result = score_accounts(settings, model, out, ids)
    rate = result.accounts / result.seconds * 60 if result.seconds else 0.0
    return (
        f"{result.accounts:,} accounts ({result.high:,} high risk) by version {result.version} "
        f"into {result.path} in {result.seconds:.1f} s ({rate:,.0f} accounts/min)"
    )


def _read_accounts(path: Path) -> list[str]:
    import pandas as pd

    if not path.exists():
        raise ConfigError(f"accounts file {path} does not exist.")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str)
        if "account_id" not in frame.columns:
            raise ConfigError(f"{path} has no account_id column; add one or list one id a line.")
        return frame["account_id"].dropna().tolist()
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def register(app: typer.Typer) -> None:
    """Add the model commands to the ``csa`` app."""
    app.command()(train)
    app.command()(promote)
    app.command()(models)
    app.command()(score)
