"""``csa analytics cohorts|revenue|segments|survival|risk`` and ``csa report``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from csa.cli.context import failures_exit, stage, state
from csa.errors import ConfigError
from csa.settings import Settings

analytics_app = typer.Typer(
    help="Customer analytics as tables (CSV) and plots (PNG).", no_args_is_help=True
)

_PART_HELP = {
    "cohorts": "Logo and revenue retention by signup month, plan and segment.",
    "revenue": "Monthly MRR movements, GRR and NRR by month and cohort, the waterfall.",
    "segments": "Cluster accounts on behaviour and store them as an account attribute.",
    "survival": "Time-to-churn model: survival curves, expected months, concordance.",
    "risk": "Revenue at risk and next quarter's NRR forecast, with its backtest.",
}

OutOption = Annotated[
    Path | None, typer.Option(help="Folder for the CSV and PNG files [<home>/reports/analytics].")
]
TableOption = Annotated[
    Path | None,
    typer.Option(help="Your own transaction table (CSV, Parquet or whitespace-separated .txt)."),
]
CustomerOption = Annotated[str | None, typer.Option(help="Customer id column of --table.")]
TimeOption = Annotated[str | None, typer.Option(help="Transaction time column of --table.")]
AmountOption = Annotated[str | None, typer.Option(help="Money column of --table.")]


def _context(
    table: Path | None, customer: str | None, time_column: str | None, amount: str | None
) -> object:
    from csa.analytics import AnalyticsContext, TransactionTable

    settings = state.settings()
    if table is None:
        if customer or time_column or amount:
            raise ConfigError("--customer, --time and --amount name the columns of --table.")
        return AnalyticsContext(settings)
    if not (customer and time_column and amount):
        raise ConfigError(
            "--table needs --customer COL, --time COL and --amount COL naming its columns."
        )
    return AnalyticsContext(settings, TransactionTable(table, customer, time_column, amount))


def _run(
    name: str,
    out: Path | None,
    table: Path | None,
    customer: str | None,
    time_column: str | None,
    amount: str | None,
) -> None:
    from csa.analytics import AnalyticsContext, run_part

    started = time.perf_counter()
    with failures_exit():
        context = _context(table, customer, time_column, amount)
        assert isinstance(context, AnalyticsContext)
        folder = out or context.settings.reports_dir / "analytics"
        part = run_part(context, name)
        written = part.write(folder)
    detail = " ".join(part.findings[:2]) if part.findings else "done"
    stage(
        1,
        1,
        f"analytics {name}",
        f"{detail} ({len(written)} files into {folder} in {time.perf_counter() - started:.1f} s)",
    )


def _command(name: str) -> None:
    def command(
        out: OutOption = None,
        table: TableOption = None,
        customer: CustomerOption = None,
        time_column: Annotated[
            str | None, typer.Option("--time", help="Transaction time column of --table.")
        ] = None,
        amount: AmountOption = None,
    ) -> None:
        _run(name, out, table, customer, time_column, amount)

    command.__doc__ = _PART_HELP[name]
    analytics_app.command(name)(command)


for _name in _PART_HELP:
    _command(_name)


def report(
    out: Annotated[Path, typer.Option(help="Folder for the HTML report.")],
    table: TableOption = None,
    customer: CustomerOption = None,
    time_column: Annotated[
        str | None, typer.Option("--time", help="Transaction time column of --table.")
    ] = None,
    amount: AmountOption = None,
) -> None:
    """Every analysis in one HTML page that reads offline."""
    from csa.analytics import AnalyticsContext, build_report

    started = time.perf_counter()
    with failures_exit():
        context = _context(table, customer, time_column, amount)
        assert isinstance(context, AnalyticsContext)
        path = build_report(context, out)
    stage(1, 1, "report", f"{path} in {time.perf_counter() - started:.1f} s")


def run_report(settings: Settings, out: Path) -> str:
    """Write the lake's analytics report; the stage line's detail (``csa demo`` uses it)."""
    from csa.analytics import AnalyticsContext, build_report

    started = time.perf_counter()
    with failures_exit():
        path = build_report(AnalyticsContext(settings), out)
    return f"{path} in {time.perf_counter() - started:.1f} s"


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the ``csa`` app."""
    app.add_typer(analytics_app, name="analytics")
    app.command("report")(report)
