"""Cohorts: how many customers (logo retention) and how much revenue (revenue retention) each
signup month, plan or segment keeps, month after month.

A customer's cohort is its first active month; its *age* in a later month is the number of
months since then. Logo retention at age ``a`` is the share of a cohort's customers active at
``a``; revenue retention is the cohort's revenue at ``a`` over its revenue at age 0, so it
rises above 1 when expansion outweighs churn. Only customers old enough to have reached age
``a`` before the ledger ends are counted at ``a``, so a young cohort never looks churned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from csa.analytics.ledger import RevenueLedger
from csa.errors import ConfigError

ALL = "all customers"
_MAX_PLOTTED_COHORTS = 24
# The average curve stops where fewer customers than this are old enough to be counted.
_MIN_CURVE_CUSTOMERS = 20
_MIN_COHORT_CUSTOMERS = 5


@dataclass
class CohortTables:
    """Retention by cohort (rows) and age in months (columns)."""

    by: str  # "signup month" or the attribute the cohorts are cut by
    customers: pd.Series  # cohort -> customers who started in it
    counts: pd.DataFrame  # customers old enough to be counted, by cohort and age
    logo: pd.DataFrame  # share of customers active
    revenue: pd.DataFrame  # revenue over the cohort's revenue at age 0

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """The tables to write as CSV, with the cohort sizes as the first column."""
        sizes = self.customers.rename("customers")
        return {
            "logo_retention": pd.concat([sizes, self.logo], axis=1),
            "revenue_retention": pd.concat([sizes, self.revenue], axis=1),
        }


def cohort_tables(
    ledger: RevenueLedger,
    by: str | None = None,
    period: str = "M",
    max_age: int | None = None,
) -> CohortTables:
    """Logo and revenue retention by signup cohort (or by a customer attribute).

    Args:
        ledger: revenue per customer and month.
        by: a column of ``ledger.attributes`` (``plan``, ``segment``...) to group customers by
            instead of their signup month; ages still count from each customer's own signup.
        period: ``M`` for signup months, ``Q`` for signup quarters (``by`` unset only).
        max_age: drop ages beyond this many months.

    Raises:
        ConfigError: ``by`` names no attribute of the ledger.
    """
    first = ledger.observed_cohorts()
    values = ledger.values.loc[first.index].to_numpy()
    months = ledger.months
    start = months.get_indexer(pd.PeriodIndex(first.to_numpy()))
    ages = np.arange(len(months))[None, :] - start[:, None]

    if by is None:
        groups = pd.PeriodIndex(first.to_numpy()).asfreq(period).astype(str).to_numpy()
        label = "signup month" if period == "M" else "signup quarter"
    else:
        if by not in ledger.attributes.columns:
            known = ", ".join(ledger.attributes.columns) or "none"
            raise ConfigError(
                f"customers have no attribute {by!r} to cut cohorts by; known: {known}."
            )
        groups = ledger.attributes.loc[first.index, by].fillna("unknown").astype(str).to_numpy()
        label = by

    rows, cols = np.nonzero(ages >= 0)
    long = pd.DataFrame(
        {
            "group": groups[rows],
            "age": ages[rows, cols],
            "active": values[rows, cols] > 0,
            "value": values[rows, cols],
            "start_value": values[rows, start[rows]],
        }
    )
    if max_age is not None:
        long = long.loc[long["age"] <= max_age]
    return _tables(long, label)


def pooled_curves(ledger: RevenueLedger, max_age: int | None = None) -> pd.DataFrame:
    """Logo and revenue retention of every customer together, by age: the average curve."""
    everyone = pd.DataFrame({"_all": ALL}, index=ledger.values.index)
    ledger = RevenueLedger(ledger.values, everyone, ledger.kind, ledger.observed_from)
    tables = cohort_tables(ledger, by="_all", max_age=max_age)
    curves = pd.DataFrame({"logo": tables.logo.loc[ALL], "revenue": tables.revenue.loc[ALL]})
    curves["customers"] = tables.counts.loc[ALL]
    return curves


def _tables(long: pd.DataFrame, label: str) -> CohortTables:
    grouped = long.groupby(["group", "age"])
    logo = grouped["active"].mean().unstack("age")
    revenue = (grouped["value"].sum() / grouped["start_value"].sum()).unstack("age")
    customers = long.loc[long["age"] == 0].groupby("group").size()
    counts = grouped.size().unstack("age")
    for table in (logo, revenue, counts):
        table.index.name = label
        table.columns.name = "months since signup"
    customers.index.name = label
    return CohortTables(by=label, customers=customers, counts=counts, logo=logo, revenue=revenue)


def retention_curves_figure(ledger: RevenueLedger, by: str | None = None) -> Figure:
    """Logo and revenue retention curves side by side: one line per cohort, the average bold.

    With many signup months, cohorts are drawn by signup quarter so the lines stay readable.
    """
    many = by is None and len(ledger.months) > _MAX_PLOTTED_COHORTS
    tables = cohort_tables(ledger, by=by, period="Q" if many else "M")
    pooled = pooled_curves(ledger)
    pooled = pooled.loc[pooled["customers"] >= min(_MIN_CURVE_CUSTOMERS, pooled["customers"].max())]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    cohorts = list(tables.logo.index)[-_MAX_PLOTTED_COHORTS:]
    colours = _palette(len(cohorts))
    for ax, table, what in (
        (axes[0], tables.logo, "logo"),
        (axes[1], tables.revenue, "revenue"),
    ):
        for colour, cohort in zip(colours, cohorts, strict=True):
            curve = table.loc[cohort].where(tables.counts.loc[cohort] >= _MIN_COHORT_CUSTOMERS)
            curve = curve.dropna()
            ax.plot(curve.index, curve.to_numpy(), color=colour, lw=1.0, alpha=0.8, label=cohort)
        ax.plot(pooled.index, pooled[what], color="black", lw=2.5, label=ALL)
        ax.set_xlabel("Months since signup")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.axhline(1.0, color="grey", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Share of customers still active")
    axes[0].set_title("Logo retention")
    axes[1].set_ylabel("Revenue relative to the signup month")
    axes[1].set_title("Revenue retention")
    axes[0].set_ylim(0, 1.05)
    cut = tables.by
    handles, labels = axes[1].get_legend_handles_labels()
    if len(labels) <= 13:
        # Below the plots: group names can be long, and inside they would hide the curves.
        columns = 4 if max(len(label) for label in labels) < 20 else 2
        figure.legend(
            handles,
            labels,
            title=cut,
            fontsize=7,
            title_fontsize=8,
            loc="outside lower center",
            ncols=columns,
        )
    else:
        axes[1].legend(handles[-1:], labels[-1:], fontsize=8, loc="best")
        bar = figure.colorbar(_cohort_mappable(len(cohorts)), ax=axes, label=cut)
        bar.set_ticks([0, len(cohorts) - 1], labels=[cohorts[0], cohorts[-1]])
    figure.suptitle(f"Retention by {cut}")
    return figure


def retention_heatmap_figure(tables: CohortTables, what: str = "logo") -> Figure:
    """A cohort-by-age heat map of ``logo`` or ``revenue`` retention, newest cohorts last."""
    table = (tables.logo if what == "logo" else tables.revenue).iloc[-_MAX_PLOTTED_COHORTS:]
    table = table.loc[:, [c for c in table.columns if c <= _MAX_PLOTTED_COHORTS]]
    figure = Figure(figsize=(11, 0.28 * len(table) + 1.8), layout="constrained")
    ax = figure.subplots()
    upper = 1.0 if what == "logo" else max(1.5, float(np.nanmax(table.to_numpy())))
    image = ax.imshow(table.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=upper)
    ax.set_yticks(range(len(table)), [str(c) for c in table.index], fontsize=7)
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], fontsize=7)
    ax.set_xlabel("Months since signup")
    ax.set_ylabel(f"Cohort ({tables.by})")
    kind = "share of customers active" if what == "logo" else "revenue / signup-month revenue"
    if table.size <= 300:
        for (row, col), value in np.ndenumerate(table.to_numpy()):
            if not np.isnan(value):
                shade = "white" if value < 0.6 * upper else "black"
                ax.text(col, row, f"{value:.0%}", ha="center", va="center", fontsize=6, color=shade)
    figure.colorbar(image, ax=ax, label=kind)
    ax.set_title(f"{what.capitalize()} retention by {tables.by}")
    return figure


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def _cohort_mappable(count: int) -> ScalarMappable:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    scale = Normalize(0, max(count - 1, 1) / 0.9)  # the palette stops at 90% of the map
    mappable = ScalarMappable(norm=scale, cmap=colormaps["viridis"])
    mappable.set_array([])
    return mappable
