"""Revenue at risk and the next quarter's net revenue retention, with an interval and a backtest.

For every account that is a customer on the forecast date, the champion churn and expansion
models give ``p_churn`` and ``p_expand`` within their horizon. Each account then ends the
quarter in one of three states:

- churned (probability ``p_churn``): its MRR goes to zero; ``p_churn * MRR`` is its revenue at
  risk;
- expanded (``p_expand``): its MRR grows by the *expected uplift* ``u_e``, the MRR-weighted mean
  growth of the accounts that expanded in past quarters;
- neither: its MRR moves by ``u_0``, the weighted mean change of the other surviving accounts
  (contractions show up here).

The forecast NRR of a group is the sum of the expected end MRR over the sum of the start MRR.
The interval comes from Monte Carlo draws of every account's state (and of its uplift, from the
past quarters' observed ratios), taken independently per account: a shock that hits all
accounts at once is not in it. Uplift rates are estimated only from quarters that ended by the
forecast date, so a backtest from a past date uses nothing it could not have known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from csa.analytics.ledger import mrr_as_of
from csa.analytics.snapshots import JOIN_KEY, snapshot_days, snapshots_on
from csa.errors import LakeError
from csa.ingestion.lake import read_table
from csa.settings import Settings

logger = logging.getLogger(__name__)

COMPANY = "company"
_EXPANSIONS = ("seat_increase", "upgrade")
_HISTORY_QUARTERS = 8


@dataclass
class UpliftHistory:
    """What past quarters say about revenue change, by what happened to an account."""

    expansion: float  # weighted mean relative MRR change of accounts that expanded
    other: float  # the same for accounts that neither churned nor expanded
    expansion_ratios: np.ndarray  # each expanded account's end/start MRR
    other_ratios: np.ndarray
    windows: int


@dataclass
class Forecast:
    """One forecast: per account, and summed per segment and for the company."""

    origin: pd.Timestamp
    end: pd.Timestamp
    accounts: pd.DataFrame  # account_id, segment, mrr, p_churn, p_expand, at risk, uplift
    groups: pd.DataFrame  # segment (and company): start MRR, at risk, NRR, interval
    uplift: UpliftHistory


def uplift_history(settings: Settings, origin: pd.Timestamp, months: int) -> UpliftHistory:
    """Relative MRR change per account over past quarters that ended by ``origin``.

    Raises:
        LakeError: no complete quarter of history before ``origin``.
    """
    changes = read_table(
        settings.lake_dir, "subscriptions", ["account_id", "change_type", "effective_at"]
    )
    first = changes["effective_at"].min()
    expansion_ratios, other_ratios = [], []
    weights = {"expansion": [0.0, 0.0], "other": [0.0, 0.0]}
    windows = 0
    for back in range(_HISTORY_QUARTERS):
        end = origin - pd.DateOffset(months=months * back)
        start = end - pd.DateOffset(months=months)
        if start < first:
            break
        before, after = mrr_as_of(settings.lake_dir, start), mrr_as_of(settings.lake_dir, end)
        before = before[before > 0]
        after = after.reindex(before.index).fillna(0.0)
        window = changes.loc[(changes["effective_at"] > start) & (changes["effective_at"] <= end)]
        grew = set(window.loc[window["change_type"].isin(_EXPANSIONS), "account_id"])
        stayed = after > 0
        expanded = stayed & before.index.isin(grew)
        other = stayed & ~expanded
        for name, rows in (("expansion", expanded), ("other", other)):
            weights[name][0] += float(after[rows].sum() - before[rows].sum())
            weights[name][1] += float(before[rows].sum())
        expansion_ratios.append((after[expanded] / before[expanded]).to_numpy())
        other_ratios.append((after[other] / before[other]).to_numpy())
        windows += 1
    if windows == 0:
        raise LakeError(
            f"no complete {months}-month period of subscriptions ends by {origin:%Y-%m-%d}, so "
            "there is no history to size expansions from; ingest more history."
        )
    exp_ratios, oth_ratios = np.concatenate(expansion_ratios), np.concatenate(other_ratios)
    return UpliftHistory(
        expansion=weights["expansion"][0] / weights["expansion"][1] if len(exp_ratios) else 0.0,
        other=weights["other"][0] / weights["other"][1] if len(oth_ratios) else 0.0,
        expansion_ratios=exp_ratios if len(exp_ratios) else np.ones(1),
        other_ratios=oth_ratios if len(oth_ratios) else np.ones(1),
        windows=windows,
    )


def forecast_quarter(
    settings: Settings,
    origin: pd.Timestamp | None = None,
    segments: pd.DataFrame | None = None,
) -> Forecast:
    """Forecast the NRR of the accounts that are customers on ``origin`` (default: newest day).

    Args:
        settings: the home whose champion models and lake are used.
        origin: a snapshot day; the forecast covers ``analytics.horizon_months`` after it.
        segments: ``account_id`` to ``segment_name`` (the stored segments); none: one group.

    Raises:
        ModelNotFound: no champion churn or expansion model (run `csa train` and `csa promote`).
    """
    from csa.training.registry import load_model

    config = settings.analytics
    days = snapshot_days(settings)
    origin = days[-1] if origin is None else days[days <= origin][-1]
    frame = snapshots_on(settings, [origin])
    churn, expansion = load_model(settings, "churn"), load_model(settings, "expansion")
    mrr = mrr_as_of(settings.lake_dir, origin).reindex(frame[JOIN_KEY]).to_numpy()
    mrr = np.where(np.isnan(mrr), frame["mrr"].to_numpy(dtype=float), mrr)
    p_churn = churn.predict(frame)
    p_expand = expansion.predict(frame)
    # The two models are fitted apart; when their probabilities overlap, share them out.
    total = np.maximum(p_churn + p_expand, 1.0)
    p_churn, p_expand = p_churn / total, p_expand / total
    uplift = uplift_history(settings, origin, config.horizon_months)

    accounts = pd.DataFrame(
        {
            JOIN_KEY: frame[JOIN_KEY].to_numpy(),
            "segment": _segment_names(frame[JOIN_KEY], segments),
            "mrr": mrr,
            "p_churn": p_churn,
            "p_expand": p_expand,
            "revenue_at_risk": p_churn * mrr,
            "expected_expansion": p_expand * uplift.expansion * mrr,
            "expected_other_change": (1 - p_churn - p_expand) * uplift.other * mrr,
        }
    )
    accounts["expected_mrr"] = (
        accounts["mrr"]
        - accounts["revenue_at_risk"]
        + accounts["expected_expansion"]
        + accounts["expected_other_change"]
    )
    draws = _simulate(accounts, uplift, config.simulations, config.seed)
    groups = _summarise(accounts, draws, config.interval)
    end = origin + pd.DateOffset(months=config.horizon_months)
    logger.info(
        "forecast from %s: NRR %.3f (%.3f-%.3f), %.0f of %.0f MRR at risk, %d accounts",
        origin.date(),
        *groups.loc[COMPANY, ["forecast_nrr", "low", "high", "revenue_at_risk", "start_mrr"]],
        len(accounts),
    )
    return Forecast(
        origin,
        end,
        accounts.sort_values("revenue_at_risk", ascending=False, ignore_index=True),
        groups,
        uplift,
    )


def backtest(settings: Settings, segments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Forecasts from past dates whose quarter has fully happened, against what happened.

    The newest origin is one horizon before the data ends; the others step back a month each
    (``analytics.backtest_origins``). The actual NRR is the end MRR in the lake of the accounts
    that were customers on the origin over their MRR then.
    """
    config = settings.analytics
    days = snapshot_days(settings)
    newest = days[-1] - pd.DateOffset(months=config.horizon_months)
    rows = []
    for back in range(config.backtest_origins):
        origin = newest - pd.DateOffset(months=back)
        if origin < days[0]:
            break
        forecast = forecast_quarter(settings, origin, segments)
        actual = mrr_as_of(settings.lake_dir, forecast.end)
        accounts = forecast.accounts.assign(
            actual_mrr=actual.reindex(forecast.accounts[JOIN_KEY]).fillna(0.0).to_numpy()
        )
        for group, members in [(COMPANY, accounts), *accounts.groupby("segment")]:
            row = forecast.groups.loc[group]
            actual_nrr = members["actual_mrr"].sum() / members["mrr"].sum()
            rows.append(
                {
                    "origin": forecast.origin.date(),
                    "end": forecast.end.date(),
                    "group": group,
                    "accounts": len(members),
                    "forecast_nrr": row["forecast_nrr"],
                    "low": row["low"],
                    "high": row["high"],
                    "actual_nrr": actual_nrr,
                    "error": row["forecast_nrr"] - actual_nrr,
                    "inside_interval": bool(row["low"] <= actual_nrr <= row["high"]),
                }
            )
    frame = pd.DataFrame(rows)
    if len(frame):
        company = frame.loc[frame["group"] == COMPANY]
        logger.info(
            "backtest: %d origins, company NRR mean absolute error %.3f, %d of %d inside",
            len(company),
            company["error"].abs().mean(),
            int(company["inside_interval"].sum()),
            len(company),
        )
    return frame


def _segment_names(ids: pd.Series, segments: pd.DataFrame | None) -> np.ndarray:
    if segments is None or not len(segments):
        return np.full(len(ids), "all accounts", dtype=object)
    lookup = segments.set_index(JOIN_KEY)["segment_name"]
    return ids.map(lookup).fillna("unsegmented").to_numpy(dtype=object)


def _simulate(accounts: pd.DataFrame, uplift: UpliftHistory, draws: int, seed: int) -> np.ndarray:
    """End MRR of every account in each draw (draws by accounts)."""
    rng = np.random.default_rng(seed)
    n = len(accounts)
    mrr = accounts["mrr"].to_numpy()
    p_churn, p_expand = accounts["p_churn"].to_numpy(), accounts["p_expand"].to_numpy()
    fate = rng.random((draws, n))
    churned = fate < p_churn
    expanded = ~churned & (fate < p_churn + p_expand)
    ratio = np.where(
        expanded,
        rng.choice(uplift.expansion_ratios, size=(draws, n)),
        rng.choice(uplift.other_ratios, size=(draws, n)),
    )
    return np.where(churned, 0.0, mrr * ratio)


def _summarise(accounts: pd.DataFrame, draws: np.ndarray, coverage: float) -> pd.DataFrame:
    tail = (1 - coverage) / 2
    groups = [(COMPANY, np.ones(len(accounts), dtype=bool))]
    groups += [
        (name, (accounts["segment"] == name).to_numpy())
        for name in sorted(accounts["segment"].unique())
    ]
    rows = {}
    for name, members in groups:
        start = accounts.loc[members, "mrr"].sum()
        simulated = draws[:, members].sum(axis=1) / start
        rows[name] = {
            "accounts": int(members.sum()),
            "start_mrr": start,
            "revenue_at_risk": accounts.loc[members, "revenue_at_risk"].sum(),
            "expected_expansion": accounts.loc[members, "expected_expansion"].sum(),
            "expected_mrr": accounts.loc[members, "expected_mrr"].sum(),
            "forecast_nrr": accounts.loc[members, "expected_mrr"].sum() / start,
            "low": float(np.quantile(simulated, tail)),
            "high": float(np.quantile(simulated, 1 - tail)),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "group"
    return frame


def forecast_figure(forecast: Forecast, history: pd.DataFrame) -> Figure:
    """Left: revenue at risk and expected expansion per segment. Right: the backtest, forecast
    NRR with its interval against the NRR that happened, and today's forecast."""
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    money, check = figure.subplots(1, 2)
    groups = forecast.groups.drop(index=COMPANY)
    position = np.arange(len(groups))
    money.barh(
        position - 0.2,
        groups["revenue_at_risk"],
        height=0.4,
        color="#C44E52",
        label="revenue at risk (p churn x MRR)",
    )
    money.barh(
        position + 0.2,
        groups["expected_expansion"],
        height=0.4,
        color="#55A868",
        label="expected expansion (p expand x uplift)",
    )
    labels = [
        f"{_wrap(str(name))}\nNRR {row.forecast_nrr:.0%} ({row.low:.0%}-{row.high:.0%})"
        for name, row in groups.iterrows()
    ]
    money.set_yticks(position, labels, fontsize=8)
    money.invert_yaxis()
    money.set_xlabel("Monthly recurring revenue")
    money.set_title(f"Next {_months(forecast)} months from {forecast.origin:%Y-%m-%d}", fontsize=10)
    money.legend(fontsize=7, loc="lower right")
    money.grid(axis="x", alpha=0.3)

    company = history.loc[history["group"] == COMPANY] if len(history) else history
    if len(company):
        x = pd.to_datetime(company["end"])
        check.errorbar(
            x,
            company["forecast_nrr"],
            yerr=[
                company["forecast_nrr"] - company["low"],
                company["high"] - company["forecast_nrr"],
            ],
            fmt="o",
            color="#4C72B0",
            capsize=4,
            label="forecast (interval)",
        )
        check.plot(x, company["actual_nrr"], "x", color="black", ms=9, label="what happened")
    row = forecast.groups.loc[COMPANY]
    check.errorbar(
        [forecast.end],
        [row["forecast_nrr"]],
        yerr=[[row["forecast_nrr"] - row["low"]], [row["high"] - row["forecast_nrr"]]],
        fmt="s",
        color="#DD8452",
        capsize=4,
        label="today's forecast",
    )
    check.set_xlabel("End of the forecast quarter")
    check.set_ylabel("Net revenue retention")
    check.yaxis.set_major_formatter(_percent())
    check.set_title("Company NRR: backtest and forecast", fontsize=10)
    check.legend(fontsize=7)
    check.grid(alpha=0.3)
    check.tick_params(axis="x", labelrotation=30)
    return figure


def _months(forecast: Forecast) -> int:
    return (
        (forecast.end.year - forecast.origin.year) * 12 + forecast.end.month - forecast.origin.month
    )


def _wrap(text: str, width: int = 24) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _percent() -> object:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:.1%}")
