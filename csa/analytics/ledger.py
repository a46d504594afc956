"""The revenue ledger: each customer's revenue in each calendar month.

Every analysis of this package starts here. From the lake, a customer's value in a month is its
monthly recurring revenue (MRR) at the end of that month, replayed from the subscription change
log. From a user's transaction table, it is the sum of the customer's transactions in the month.
Either way a customer is *active* in a month when its value there is above zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from csa.errors import ConfigError, LakeError
from csa.ingestion.lake import read_table

logger = logging.getLogger(__name__)


@dataclass
class RevenueLedger:
    """Revenue per customer (rows) and calendar month (columns, ``pd.Period``).

    Attributes:
        values: customers by months; zero where a customer paid nothing.
        attributes: one row per customer (same index), e.g. ``plan_tier`` or ``segment``, the
            groupings a cohort table can be cut by.
        kind: ``mrr`` (a recurring-revenue level at month end) or ``transactions`` (money taken
            in the month).
        observed_from: the first month whose changes were recorded. A CRM export reaches back
            to contracts signed before the billing history begins, but only for the customers
            who were still there; earlier months show survivors only, so movements, retention
            rates and cohorts start here. None: everything was recorded.
    """

    values: pd.DataFrame
    attributes: pd.DataFrame = field(default_factory=pd.DataFrame)
    kind: str = "mrr"
    observed_from: pd.Period | None = None

    @property
    def months(self) -> pd.PeriodIndex:
        return pd.PeriodIndex(self.values.columns)

    @property
    def active(self) -> pd.DataFrame:
        return self.values > 0

    def first_month(self) -> pd.Series:
        """Each customer's first active month (its signup cohort); customers never active drop."""
        active = self.active.to_numpy()
        has_any = active.any(axis=1)
        first = active.argmax(axis=1)
        months = self.months
        return pd.Series(months[first[has_any]], index=self.values.index[has_any], name="cohort")

    def observed_cohorts(self) -> pd.Series:
        """First active months of the customers who signed up within the recorded history."""
        first = self.first_month()
        if self.observed_from is None:
            return first
        return first[first >= self.observed_from]

    def observed_start(self) -> int:
        """Index of the first recorded month among the ledger's months."""
        if self.observed_from is None or self.observed_from <= self.months[0]:
            return 0
        return int(self.months.get_loc(self.observed_from))

    def with_attributes(self, extra: pd.DataFrame) -> RevenueLedger:
        """The same ledger with more customer attributes joined on the customer index."""
        attributes = self.attributes.join(extra, how="left") if len(self.attributes) else extra
        return RevenueLedger(
            self.values, attributes.reindex(self.values.index), self.kind, self.observed_from
        )


def lake_ledger(lake_dir: Path, end: pd.Timestamp | None = None) -> RevenueLedger:
    """Month-end MRR of every account, replayed from the lake's subscription changes.

    Args:
        lake_dir: the lake (``<home>/data/lake``).
        end: replay changes up to this instant (default: the newest change); the last month
            is that month's MRR as of ``end``.

    Raises:
        LakeError: the lake holds no subscriptions.
    """
    changes = read_table(lake_dir, "subscriptions")
    if changes.empty:
        raise LakeError(
            f"the lake at {lake_dir} holds no subscriptions, so there is no revenue to analyse; "
            "run `csa ingest` (or `csa demo`) first."
        )
    if end is not None:
        changes = changes.loc[changes["effective_at"] <= end]
    values = _month_end_levels(changes, "account_id", "effective_at", "mrr")
    attributes = _lake_attributes(lake_dir, changes).reindex(values.index)
    payments = read_table(lake_dir, "billing_events", ["occurred_at"])["occurred_at"]
    first = payments.min() if len(payments) else changes["effective_at"].min()
    observed = pd.Period(first.tz_convert("UTC").tz_localize(None), freq="M")
    logger.info(
        "ledger: %d accounts over %d months from the lake, recorded from %s",
        *values.shape,
        observed,
    )
    return RevenueLedger(values, attributes, kind="mrr", observed_from=observed)


def mrr_as_of(lake_dir: Path, when: pd.Timestamp) -> pd.Series:
    """Each account's MRR at one instant (zero once canceled), from the subscription changes."""
    changes = read_table(lake_dir, "subscriptions", ["account_id", "effective_at", "mrr"])
    known = changes.loc[changes["effective_at"] <= when]
    latest = known.sort_values("effective_at", kind="stable").groupby("account_id").tail(1)
    return latest.set_index("account_id")["mrr"].astype("float64")


def _month_end_levels(frame: pd.DataFrame, key: str, time: str, level: str) -> pd.DataFrame:
    ordered = frame.sort_values(time, kind="stable")
    months = ordered[time].dt.tz_localize(None).dt.to_period("M")
    last = ordered.assign(month=months).groupby([key, "month"])[level].last()
    wide = last.unstack("month")
    span = pd.period_range(months.min(), months.max(), freq="M")
    # A level holds until the next change; before a customer's first change it had none.
    wide = wide.reindex(columns=span).ffill(axis=1).fillna(0.0)
    wide.columns = span
    return wide.astype("float64")


def _lake_attributes(lake_dir: Path, changes: pd.DataFrame) -> pd.DataFrame:
    first = changes.sort_values("effective_at", kind="stable").groupby("account_id").head(1)
    attributes = first.set_index("account_id")[["plan_tier", "billing_period"]].rename(
        columns={"plan_tier": "plan"}
    )
    accounts = read_table(lake_dir, "accounts", ["account_id", "size_band"])
    return attributes.join(accounts.set_index("account_id"), how="left")


def transaction_ledger(
    frame: pd.DataFrame, customer: str, time: str, amount: str, group: str | None = None
) -> RevenueLedger:
    """Money taken per customer and month from a table of transactions.

    Args:
        frame: one row per transaction.
        customer: the customer id column.
        time: the transaction time column (dates, timestamps, or ``YYYYMMDD`` numbers).
        amount: the money column; refunds may be negative.
        group: optional column to keep as a customer attribute (its first value per customer).

    Raises:
        ConfigError: a named column is missing or its values cannot be read.
    """
    wanted = [customer, time, amount, *([group] if group else [])]
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        raise ConfigError(
            f"the transaction table has no column {', '.join(map(repr, missing))}; its columns "
            f"are {', '.join(map(str, frame.columns))}. Name them with --customer, --time and "
            "--amount."
        )
    moments = parse_times(frame[time], time)
    money = pd.to_numeric(frame[amount], errors="coerce")
    if money.isna().any():
        raise ConfigError(
            f"column {amount!r} has {int(money.isna().sum())} values that are not numbers; "
            "clean them or pick another --amount column."
        )
    rows = pd.DataFrame(
        {"customer": frame[customer].astype(str), "month": moments.dt.to_period("M"), "v": money}
    )
    wide = rows.groupby(["customer", "month"])["v"].sum().unstack("month")
    span = pd.period_range(rows["month"].min(), rows["month"].max(), freq="M")
    wide = wide.reindex(columns=span).fillna(0.0).clip(lower=0.0)
    wide.columns = span
    wide.index.name = "customer"
    attributes = pd.DataFrame(index=wide.index)
    if group:
        firsts = frame.assign(_c=frame[customer].astype(str), _t=moments).sort_values("_t")
        attributes[group] = firsts.groupby("_c")[group].first().reindex(wide.index)
    logger.info("ledger: %d customers over %d months from %d transactions", *wide.shape, len(frame))
    return RevenueLedger(wide.astype("float64"), attributes, kind="transactions")


def parse_times(column: pd.Series, name: str) -> pd.Series:
    """Timestamps (naive, UTC) from dates, timestamps or ``YYYYMMDD`` numbers."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(column, utc=True)
    else:
        text = column.astype(str).str.strip()
        compact = text.str.fullmatch(r"\d{8}").all()
        parsed = pd.to_datetime(
            text, format="%Y%m%d" if compact else None, utc=True, errors="coerce"
        )
    if parsed.isna().any():
        bad = column[parsed.isna()].iloc[0]
        raise ConfigError(
            f"column {name!r} has {int(parsed.isna().sum())} values that are not dates, e.g. "
            f"{bad!r}; pick the transaction time column with --time."
        )
    return parsed.dt.tz_localize(None)


def read_transactions(path: Path) -> pd.DataFrame:
    """A transaction table from CSV, Parquet, or whitespace-separated text (``.txt``/``.dat``).

    Every column is read as text except in Parquet, so ids keep their leading zeros.
    """
    if not path.exists():
        raise ConfigError(f"transaction table {path} does not exist; check the --table path.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str)
    if suffix in (".txt", ".dat", ".tsv"):
        return pd.read_csv(path, sep=r"\s+", dtype=str)
    raise ConfigError(f"cannot read {path}: use a .csv, .parquet or whitespace-separated .txt.")
