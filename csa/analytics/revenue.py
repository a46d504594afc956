"""Revenue retention: monthly MRR movements, gross and net revenue retention, the waterfall.

Between two consecutive months every customer's change in revenue is one movement:

| movement | last month | this month |
|---|---|---|
| new | never active before | > 0 |
| reactivation | 0, but active in some earlier month | > 0 |
| expansion | > 0 | more than last month |
| contraction | > 0 | less than last month, still > 0 |
| churn | > 0 | 0 |

so that ``start + new + reactivation + expansion + contraction + churn = end`` (contraction and
churn are negative). Over the customers active at the start of a period,
``GRR = (start + contraction + churn) / start`` (at most 1) and
``NRR = (start + expansion + contraction + churn) / start``; new and reactivated revenue come
from customers who were not in the starting base, so neither counts in either rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from csa.analytics.ledger import RevenueLedger

MOVEMENTS = ("new", "reactivation", "expansion", "contraction", "churn")


def mrr_movements(ledger: RevenueLedger) -> pd.DataFrame:
    """One row per month (from the second): start, each movement, end, GRR and NRR.

    The first month of the ledger has no month before it, so it only starts the chain; months
    before ``ledger.observed_from`` are left out, since their movements were not recorded.
    """
    values = ledger.values.to_numpy()
    previous, current = values[:, :-1], values[:, 1:]
    # Active in any month up to and including the previous one.
    seen_before = np.maximum.accumulate(values > 0, axis=1)[:, :-1]
    delta = current - previous
    was, now = previous > 0, current > 0
    parts = {
        "new": np.where(~was & now & ~seen_before, current, 0.0),
        "reactivation": np.where(~was & now & seen_before, current, 0.0),
        "expansion": np.where(was & now & (delta > 0), delta, 0.0),
        "contraction": np.where(was & now & (delta < 0), delta, 0.0),
        "churn": np.where(was & ~now, -previous, 0.0),
    }
    frame = pd.DataFrame(
        {"start": previous.sum(axis=0)}
        | {name: part.sum(axis=0) for name, part in parts.items()}
        | {"end": current.sum(axis=0)},
        index=pd.PeriodIndex(ledger.months[1:], name="month"),
    )
    frame["churned_customers"] = (was & ~now).sum(axis=0)
    frame["new_customers"] = (~was & now & ~seen_before).sum(axis=0)
    start = frame["start"].where(frame["start"] > 0)
    frame["grr"] = (frame["start"] + frame["contraction"] + frame["churn"]) / start
    frame["nrr"] = (
        frame["start"] + frame["expansion"] + frame["contraction"] + frame["churn"]
    ) / start
    return frame.iloc[_first_recorded_change(ledger) :]


def period_retention(ledger: RevenueLedger, months: int) -> pd.DataFrame:
    """GRR and NRR over ``months``-month periods ending in each month, customer by customer.

    NRR is the end revenue of the customers active at the period's start over their start
    revenue; GRR caps each of them at its start revenue, so expansion cannot hide a loss.
    """
    values = ledger.values.to_numpy()
    rows = []
    for end in range(_first_recorded_change(ledger) + months, values.shape[1]):
        start_values, end_values = values[:, end - months], values[:, end]
        base = start_values > 0
        start_total = start_values[base].sum()
        rows.append(
            {
                "month": ledger.months[end],
                "customers_at_start": int(base.sum()),
                "start": start_total,
                "retained": end_values[base].sum(),
                "grr": np.minimum(end_values, start_values)[base].sum() / start_total,
                "nrr": end_values[base].sum() / start_total,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.set_index("month") if len(frame) else frame


def cohort_revenue_retention(ledger: RevenueLedger) -> dict[str, pd.DataFrame]:
    """NRR and GRR of each signup cohort (rows) at each age in months (columns).

    A cohort's NRR at age ``a`` is its revenue then over its revenue in its signup month; its
    GRR caps each customer at its signup-month revenue.
    """
    first = ledger.observed_cohorts()
    values = ledger.values.loc[first.index].to_numpy()
    start = ledger.months.get_indexer(pd.PeriodIndex(first.to_numpy()))
    ages = np.arange(values.shape[1])[None, :] - start[:, None]
    rows, cols = np.nonzero(ages >= 0)
    start_value = values[rows, start[rows]]
    long = pd.DataFrame(
        {
            "cohort": first.astype(str).to_numpy()[rows],
            "age": ages[rows, cols],
            "value": values[rows, cols],
            "capped": np.minimum(values[rows, cols], start_value),
            "start_value": start_value,
        }
    )
    sums = long.groupby(["cohort", "age"])[["value", "capped", "start_value"]].sum()
    out = {
        "nrr": (sums["value"] / sums["start_value"]).unstack("age"),
        "grr": (sums["capped"] / sums["start_value"]).unstack("age"),
    }
    for table in out.values():
        table.index.name = "signup month"
        table.columns.name = "months since signup"
    return out


def _first_recorded_change(ledger: RevenueLedger) -> int:
    # The step into the first recorded month is recorded: it starts from the month before.
    return max(ledger.observed_start() - 1, 0)


def waterfall(movements: pd.DataFrame, months: int | None = None) -> pd.Series:
    """Start MRR, each movement summed, and end MRR over the last ``months`` months (all: None)."""
    window = movements if months is None else movements.iloc[-months:]
    steps = {"start": float(window["start"].iloc[0])}
    steps |= {name: float(window[name].sum()) for name in MOVEMENTS}
    steps["end"] = float(window["end"].iloc[-1])
    return pd.Series(steps)


def waterfall_figure(movements: pd.DataFrame, months: int | None = 12) -> Figure:
    """A waterfall from start to end MRR through new, reactivated, expanded, contracted and
    churned revenue over the last ``months`` months."""
    steps = waterfall(movements, months)
    window = movements if months is None else movements.iloc[-months:]
    first, last = window.index[0] - 1, window.index[-1]
    labels = [f"MRR\n{first}", "New", "Reactivated", "Expansion", "Contraction", "Churn"]
    labels.append(f"MRR\n{last}")
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    ax = figure.subplots()
    level = steps["start"]
    ax.bar(0, level, color="#4C72B0")
    for position, name in enumerate(MOVEMENTS, start=1):
        change = steps[name]
        colour = "#55A868" if change >= 0 else "#C44E52"
        ax.bar(position, change, bottom=level, color=colour)
        ax.annotate(
            _money(change, signed=True),
            (position, level + max(change, 0)),
            ha="center",
            va="bottom",
            fontsize=8,
        )
        level += change
    ax.bar(len(labels) - 1, steps["end"], color="#4C72B0")
    for position, value in ((0, steps["start"]), (len(labels) - 1, steps["end"])):
        ax.annotate(_money(value), (position, value), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("Monthly recurring revenue")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _money(value)))
    ax.yaxis.set_major_locator(MaxNLocator(6))
    ax.set_ylim(0, max(steps["start"], steps["end"], level, _peak(steps)) * 1.12)
    ax.set_title(f"MRR movements from {first + 1} to {last}, summed month by month")
    ax.grid(axis="y", alpha=0.3)
    return figure


def retention_rates_figure(movements: pd.DataFrame, quarterly: pd.DataFrame) -> Figure:
    """Monthly GRR and NRR, and the same over rolling quarters, by month."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    x = movements.index.to_timestamp()
    ax.plot(x, movements["nrr"], color="#4C72B0", lw=1, alpha=0.6, label="NRR, month over month")
    ax.plot(x, movements["grr"], color="#C44E52", lw=1, alpha=0.6, label="GRR, month over month")
    if len(quarterly):
        q = quarterly.index.to_timestamp()
        ax.plot(q, quarterly["nrr"], color="#4C72B0", lw=2.2, label="NRR over the last 3 months")
        ax.plot(q, quarterly["grr"], color="#C44E52", lw=2.2, label="GRR over the last 3 months")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("Month")
    ax.set_ylabel("Revenue retained from the start of the period")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    ax.set_title("Gross and net revenue retention")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    return figure


def _peak(steps: pd.Series) -> float:
    running = np.cumsum([steps["start"], *(steps[name] for name in MOVEMENTS)])
    return float(running.max())


def _money(value: float, signed: bool = False) -> str:
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    size = abs(value)
    if size >= 1e6:
        return f"{sign}{size / 1e6:.2f}M"
    if size >= 1e3:
        return f"{sign}{size / 1e3:.1f}k"
    return f"{sign}{size:.0f}"
