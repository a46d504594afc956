"""Each analysis as a part (tables, figures, a few plain sentences), written to a folder as CSV
and PNG or gathered into one HTML page that reads offline (figures embedded as base64 PNG).

Parts run on the lake of a home, or (cohorts, revenue, segments) on a user's own transaction
table; time to churn and the revenue forecast need the feature store and the champion models.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from csa.analytics import cohorts, forecast, revenue, segments, survival
from csa.analytics.ledger import (
    RevenueLedger,
    lake_ledger,
    read_transactions,
    transaction_ledger,
)
from csa.errors import ConfigError
from csa.settings import Settings

logger = logging.getLogger(__name__)

PARTS = ("cohorts", "revenue", "segments", "survival", "risk")
LAKE_ONLY = ("survival", "risk")
REPORT_FILE = "customer_analytics.html"


@dataclass
class TransactionTable:
    """A user's own transactions and which columns hold what."""

    path: Path
    customer: str
    time: str
    amount: str


@dataclass
class AnalysisPart:
    """One analysis, ready to write: tables, figures with captions, and its findings."""

    name: str
    title: str
    findings: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)

    def write(self, out: Path) -> list[Path]:
        """Each table as ``<part>_<table>.csv`` and each figure as ``<part>_<figure>.png``."""
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.tables.items():
            path = out / f"{self.name}_{name}.csv"
            table.to_csv(path)
            written.append(path)
        for name, figure in self.figures.items():
            path = out / f"{self.name}_{name}.png"
            figure.savefig(path, dpi=100)
            written.append(path)
        return written


class AnalyticsContext:
    """What the parts share: the settings, the revenue ledger and the segments, built once."""

    def __init__(self, settings: Settings, table: TransactionTable | None = None) -> None:
        self.settings = settings
        self.table = table
        self._ledger: RevenueLedger | None = None
        self._segments: segments.Segmentation | None = None

    @property
    def on_lake(self) -> bool:
        return self.table is None

    def ledger(self) -> RevenueLedger:
        if self._ledger is None:
            if self.table is None:
                ledger = lake_ledger(self.settings.lake_dir)
                stored = segments.read_segments(self.settings.analytics_dir)
                if stored is not None:
                    ledger = ledger.with_attributes(
                        stored.set_index("account_id")[["segment_name"]].rename(
                            columns={"segment_name": "segment"}
                        )
                    )
            else:
                rows = read_transactions(self.table.path)
                ledger = transaction_ledger(
                    rows, self.table.customer, self.table.time, self.table.amount
                )
            self._ledger = ledger
        return self._ledger

    def segmentation(self) -> segments.Segmentation:
        if self._segments is None:
            config = self.settings.analytics
            if self.on_lake:
                features, active = segments.account_behaviour(self.settings)
            else:
                features, active = segments.customer_behaviour(self.ledger())
            self._segments = segments.segment_accounts(
                features, active, config.seed, config.min_clusters, config.max_clusters
            )
            if self.on_lake:
                segments.write_segments(self._segments, self.settings.analytics_dir)
                self._ledger = None  # the ledger picks the new segments up as an attribute
            else:
                names = self._segments.assignments.set_index("account_id")["segment_name"]
                self._ledger = self.ledger().with_attributes(names.rename("segment").to_frame())
        return self._segments

    def stored_segments(self) -> pd.DataFrame | None:
        if self._segments is not None:
            return self._segments.assignments
        return segments.read_segments(self.settings.analytics_dir)


def cohorts_part(context: AnalyticsContext) -> AnalysisPart:
    ledger = context.ledger()
    part = AnalysisPart("cohorts", "Cohorts: logo and revenue retention")
    by_month = cohorts.cohort_tables(ledger)
    for name, table in by_month.to_frames().items():
        part.tables[f"{name}_by_signup_month"] = table
    part.figures["curves"] = cohorts.retention_curves_figure(ledger)
    part.captions["curves"] = (
        "Share of each signup cohort still paying (left) and its revenue relative to its first "
        "month (right), by months since signup; the bold line pools every customer."
    )
    part.figures["logo_heatmap"] = cohorts.retention_heatmap_figure(by_month, "logo")
    part.captions["logo_heatmap"] = (
        "Logo retention of the newest signup months (rows) by months since signup (columns)."
    )
    for attribute in [c for c in ("plan", "segment") if c in ledger.attributes.columns]:
        tables = cohorts.cohort_tables(ledger, by=attribute)
        for name, table in tables.to_frames().items():
            part.tables[f"{name}_by_{attribute}"] = table
        part.figures[f"curves_by_{attribute}"] = cohorts.retention_curves_figure(ledger, attribute)
        part.captions[f"curves_by_{attribute}"] = (
            f"The same curves with customers grouped by {attribute} instead of signup month."
        )
    left_out = len(ledger.first_month()) - len(ledger.observed_cohorts())
    if left_out:
        part.findings.append(
            f"{left_out} customers who signed up before the recorded history begins "
            f"({ledger.observed_from}) are left out of the cohorts: only the ones still there "
            "were exported, which would flatter their retention."
        )
    pooled = cohorts.pooled_curves(ledger)
    for age in (1, 3, 12):
        if age in pooled.index:
            part.findings.append(
                f"After {age} month{'s' if age > 1 else ''}, {pooled.loc[age, 'logo']:.1%} of "
                f"customers are still active and revenue is {pooled.loc[age, 'revenue']:.1%} of "
                "the signup month's."
            )
    return part


def revenue_part(context: AnalyticsContext) -> AnalysisPart:
    ledger = context.ledger()
    part = AnalysisPart("revenue", "Revenue retention: MRR movements, GRR and NRR")
    movements = revenue.mrr_movements(ledger)
    quarterly = revenue.period_retention(ledger, 3)
    yearly = revenue.period_retention(ledger, 12)
    by_cohort = revenue.cohort_revenue_retention(ledger)
    part.tables["movements"] = movements
    part.tables["retention_3_months"] = quarterly
    part.tables["retention_12_months"] = yearly
    part.tables["nrr_by_cohort"] = by_cohort["nrr"]
    part.tables["grr_by_cohort"] = by_cohort["grr"]
    part.figures["waterfall"] = revenue.waterfall_figure(movements)
    part.captions["waterfall"] = (
        "How MRR got from a year ago to the latest month: new customers, reactivations and "
        "expansion add; contraction and churn take away."
    )
    part.figures["rates"] = revenue.retention_rates_figure(movements, quarterly)
    part.captions["rates"] = (
        "Gross (losses only) and net (losses and expansion) revenue retention of the customers "
        "active at the start of each month (thin) and of each three-month period (bold)."
    )
    for label, table in (("3-month", quarterly), ("12-month", yearly)):
        if len(table):
            last = table.iloc[-1]
            part.findings.append(
                f"{label} retention to {table.index[-1]}: NRR {last['nrr']:.1%}, "
                f"GRR {last['grr']:.1%} over {int(last['customers_at_start'])} customers."
            )
    return part


def segments_part(context: AnalyticsContext) -> AnalysisPart:
    segmentation = context.segmentation()
    part = AnalysisPart("segments", "Segments: accounts grouped by behaviour")
    part.tables["assignments"] = segmentation.assignments.set_index("account_id")
    part.tables["profiles"] = segmentation.profiles
    part.tables["silhouette"] = segmentation.silhouette.to_frame()
    part.figures["profiles"] = segments.segments_figure(segmentation)
    part.captions["profiles"] = (
        "Each segment's average of each behaviour feature, in standard deviations from the "
        "average account (red above, blue below), and its size."
    )
    part.findings.append(
        f"{segmentation.chosen} segments, the count with the best silhouette score; refits with "
        f"other seeds agree at an adjusted Rand index of {segmentation.stability:.2f}."
    )
    part.findings.extend(segmentation.descriptions.values())
    if context.on_lake:
        path = context.settings.analytics_dir / segments.SEGMENTS_FILE
        part.findings.append(f"Stored for playbooks in {path}.")
    return part


def survival_part(context: AnalyticsContext) -> AnalysisPart:
    _need_lake(context, "survival")
    result = survival.fit_survival(context.settings)
    part = AnalysisPart("survival", "Time to churn")
    part.tables["accounts"] = result.accounts.set_index("account_id")
    part.tables["curves"] = result.curves
    part.tables["evaluation"] = pd.DataFrame(
        {"c_index": {"model": result.concordance, **result.baselines}}
    )
    part.figures["curves"] = survival.survival_figure(result, context.stored_segments())
    part.captions["curves"] = (
        "Left: on the accounts that were customers at the test origin, the share that stayed "
        "(observed) against the model's mean predicted curve. Right: the mean predicted "
        "survival of today's accounts, overall and by segment."
    )
    best = max((k for k in result.baselines if k != "constant"), key=result.baselines.__getitem__)
    part.findings.append(
        f"Concordance {result.concordance:.3f} on {result.n_test} accounts followed from "
        f"{result.cutoff:%Y-%m-%d} ({result.test_events} churned), against 0.5 for a constant "
        f"and {result.baselines[best]:.3f} for the best single-feature rule ({best})."
    )
    part.findings.append(
        f"Median expected months to churn (within {context.settings.analytics.survival_months}"
        f" months) of today's accounts: {result.accounts['expected_months'].median():.1f}."
    )
    if result.run_id:
        part.findings.append(
            f"Logged to MLflow experiment {survival.EXPERIMENT}, run {result.run_id}."
        )
    return part


def risk_part(context: AnalyticsContext) -> AnalysisPart:
    _need_lake(context, "risk")
    stored = context.stored_segments()
    today = forecast.forecast_quarter(context.settings, segments=stored)
    history = forecast.backtest(context.settings, stored)
    part = AnalysisPart("risk", "Revenue at risk and the next quarter's NRR")
    part.tables["accounts"] = today.accounts.set_index("account_id")
    part.tables["forecast"] = today.groups
    part.tables["backtest"] = history
    part.figures["forecast"] = forecast.forecast_figure(today, history)
    part.captions["forecast"] = (
        "Left: per segment, the MRR expected to be lost to churn and gained from expansion next "
        "quarter, with the forecast NRR and its interval. Right: forecasts made from past dates "
        "against the NRR that happened, and today's forecast."
    )
    company = today.groups.loc[forecast.COMPANY]
    coverage = context.settings.analytics.interval
    part.findings.append(
        f"From {today.origin:%Y-%m-%d} to {today.end:%Y-%m-%d}: {company['revenue_at_risk']:,.0f}"
        f" of {company['start_mrr']:,.0f} MRR at risk, {company['expected_expansion']:,.0f} "
        f"expected from expansion; forecast NRR {company['forecast_nrr']:.1%} "
        f"({coverage:.0%} interval {company['low']:.1%} to {company['high']:.1%})."
    )
    if len(history):
        firm = history.loc[history["group"] == forecast.COMPANY]
        part.findings.append(
            f"Backtest over {len(firm)} past quarters: mean absolute error of the company NRR "
            f"{firm['error'].abs().mean():.1%}; {int(firm['inside_interval'].sum())} of "
            f"{len(firm)} outcomes inside the interval."
        )
    return part


BUILDERS: dict[str, Callable[[AnalyticsContext], AnalysisPart]] = {
    "cohorts": cohorts_part,
    "revenue": revenue_part,
    "segments": segments_part,
    "survival": survival_part,
    "risk": risk_part,
}


def run_part(context: AnalyticsContext, name: str) -> AnalysisPart:
    """Build one part by name (``cohorts``, ``revenue``, ``segments``, ``survival``, ``risk``)."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown analysis {name!r}; use one of: {', '.join(PARTS)}.")
    started = time.perf_counter()
    part = BUILDERS[name](context)
    logger.info(
        "analytics %s: %d tables, %d figures in %.1f s",
        name,
        len(part.tables),
        len(part.figures),
        time.perf_counter() - started,
    )
    return part


def build_report(context: AnalyticsContext, out: Path) -> Path:
    """Every part that applies, as one self-contained HTML page in ``out``.

    Segments run first on the lake, so the cohorts, survival and forecast parts can cut by them.
    """
    names = ["segments", "cohorts", "revenue"] + (list(LAKE_ONLY) if context.on_lake else [])
    parts = {name: run_part(context, name) for name in names}
    ordered = [parts[name] for name in PARTS if name in parts]
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_FILE
    source = str(context.table.path) if context.table else str(context.settings.lake_dir)
    path.write_text(render_html(ordered, source))
    return path


def render_html(parts: list[AnalysisPart], source: str) -> str:
    """One HTML page: a section per part with its findings, figures and small tables."""
    sections = []
    for part in parts:
        body = [f"<h2 id='{part.name}'>{html.escape(part.title)}</h2>"]
        body += [f"<p>{html.escape(line)}</p>" for line in part.findings]
        for name, figure in part.figures.items():
            caption = html.escape(part.captions.get(name, ""))
            body.append(
                f"<figure><img alt='{caption}' src='data:image/png;base64,{_png(figure)}'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
        for name, table in part.tables.items():
            if len(table) <= 30 and len(table.columns) <= 14:
                body.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3>")
                body.append(table.to_html(float_format=lambda v: f"{v:,.3f}", border=0))
        sections.append("\n".join(body))
    contents = " | ".join(f"<a href='#{p.name}'>{html.escape(p.title)}</a>" for p in parts)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _PAGE.format(
        source=html.escape(source), stamp=stamp, contents=contents, body="\n".join(sections)
    )


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _need_lake(context: AnalyticsContext, name: str) -> None:
    if not context.on_lake:
        raise ConfigError(
            f"`{name}` needs the feature store and the champion models of a home, not a "
            "transaction table; run it without --table (cohorts, revenue and segments take one)."
        )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer analytics</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.9em; color: #555; }}
table {{ border-collapse: collapse; font-size: 0.8em; margin-bottom: 1em; }}
td, th {{ padding: 2px 8px; text-align: right; border-bottom: 1px solid #ddd; }}
</style></head><body>
<h1>Customer analytics</h1>
<p>Data: {source}. Built {stamp}.</p>
<p>{contents}</p>
{body}
</body></html>
"""
