"""Data contracts of the lake's canonical tables.

Each table is a pandera model: column types, nullability, ranges, uniqueness within a batch,
allowed categories and no timestamps in the future. The ingest engine validates every batch
against its table's contract and quarantines the rows that break it, so a contract here is the
single statement of what the lake promises to every reader (features, analytics, serving).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.typing import Series

PLAN_TIERS = ["starter", "growth", "enterprise"]
BILLING_PERIODS = ["monthly", "annual"]
SIZE_BANDS = ["1-50", "51-200", "201-1000", "1000+"]
USAGE_EVENTS = [
    "login",
    "report_created",
    "dashboard_viewed",
    "integration_connected",
    "api_call",
    "user_invited",
    "data_exported",
    "alert_configured",
    "comment_posted",
]
SUBSCRIPTION_CHANGES = [
    "new",
    "seat_increase",
    "seat_decrease",
    "upgrade",
    "downgrade",
    "renewal",
    "cancellation",
]
PAYMENT_EVENTS = ["payment_succeeded", "payment_failed", "refund"]
TICKET_PRIORITIES = ["low", "normal", "high", "urgent"]
TICKET_CHANNELS = ["email", "web", "chat", "phone"]
TICKET_STATUSES = ["new", "open", "pending", "solved", "closed"]

UtcTimestamp = pd.DatetimeTZDtype(tz="UTC")


def _not_in_future(series: pd.Series) -> pd.Series:
    # Evaluated at validation time, not import time: "now" moves on in a long-running process.
    return series.isna() | (series <= pd.Timestamp.now(tz="UTC"))


_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class _Contract(pa.DataFrameModel):
    class Config:
        strict = "filter"  # columns a mapping leaves over are dropped, never loaded
        coerce = True


class Account(_Contract):
    account_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_name: Series[str]
    industry: Series[str]
    country: Series[str] = pa.Field(str_matches=r"^[A-Z]{2}$")
    size_band: Series[str] = pa.Field(isin=SIZE_BANDS)
    plan_tier: Series[str] = pa.Field(isin=PLAN_TIERS)
    billing_period: Series[str] = pa.Field(isin=BILLING_PERIODS)
    seats: Series[int] = pa.Field(ge=1)
    price_per_seat: Series[float] = pa.Field(ge=0)
    mrr: Series[float] = pa.Field(ge=0)
    contract_start: Series[UtcTimestamp]  # type: ignore[valid-type]
    renewal_date: Series[UtcTimestamp]  # type: ignore[valid-type]
    csm_owner: Series[str]
    status: Series[str] = pa.Field(isin=["active", "churned"])
    churned_at: Series[UtcTimestamp] = pa.Field(nullable=True)  # type: ignore[valid-type]
    created_at: Series[UtcTimestamp]  # type: ignore[valid-type]
    updated_at: Series[UtcTimestamp]  # type: ignore[valid-type]

    @pa.check("created_at", "updated_at", "churned_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class Contact(_Contract):
    contact_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    first_name: Series[str]
    last_name: Series[str]
    email: Series[str] = pa.Field(str_matches=_EMAIL)
    title: Series[str] = pa.Field(nullable=True)
    is_primary: Series[bool]
    created_at: Series[UtcTimestamp]  # type: ignore[valid-type]
    updated_at: Series[UtcTimestamp]  # type: ignore[valid-type]

    @pa.check("created_at", "updated_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class Subscription(_Contract):
    """One row per change of a subscription: its full history, for point-in-time MRR."""

    change_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    subscription_id: Series[str]
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    change_type: Series[str] = pa.Field(isin=SUBSCRIPTION_CHANGES)
    plan_tier: Series[str] = pa.Field(isin=PLAN_TIERS)
    billing_period: Series[str] = pa.Field(isin=BILLING_PERIODS)
    seats: Series[int] = pa.Field(ge=0)
    price_per_seat: Series[float] = pa.Field(ge=0)
    mrr: Series[float] = pa.Field(ge=0)
    previous_mrr: Series[float] = pa.Field(ge=0)
    effective_at: Series[UtcTimestamp]  # type: ignore[valid-type]
    period_end: Series[UtcTimestamp] = pa.Field(nullable=True)  # type: ignore[valid-type]
    status: Series[str] = pa.Field(isin=["active", "canceled"])

    @pa.check("effective_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class BillingEvent(_Contract):
    """Payment attempts: the signal of failed payments."""

    event_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    subscription_id: Series[str] = pa.Field(nullable=True)
    invoice_id: Series[str] = pa.Field(nullable=True)
    event_type: Series[str] = pa.Field(isin=PAYMENT_EVENTS)
    amount: Series[float] = pa.Field(ge=0)
    currency: Series[str] = pa.Field(str_matches=r"^[a-z]{3}$")
    failure_code: Series[str] = pa.Field(nullable=True)
    occurred_at: Series[UtcTimestamp]  # type: ignore[valid-type]

    @pa.check("occurred_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class UsageEvent(_Contract):
    """Product usage: one row per tracked event; ``quantity`` counts repeats in one call."""

    message_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    user_id: Series[str] = pa.Field(str_length={"min_value": 1})
    event: Series[str] = pa.Field(isin=USAGE_EVENTS)
    quantity: Series[int] = pa.Field(ge=1)
    occurred_at: Series[UtcTimestamp]  # type: ignore[valid-type]

    @pa.check("occurred_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class Ticket(_Contract):
    ticket_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    requester_email: Series[str] = pa.Field(nullable=True, str_matches=_EMAIL)
    subject: Series[str]
    body: Series[str]
    priority: Series[str] = pa.Field(isin=TICKET_PRIORITIES)
    channel: Series[str] = pa.Field(isin=TICKET_CHANNELS)
    status: Series[str] = pa.Field(isin=TICKET_STATUSES)
    created_at: Series[UtcTimestamp]  # type: ignore[valid-type]
    updated_at: Series[UtcTimestamp]  # type: ignore[valid-type]
    solved_at: Series[UtcTimestamp] = pa.Field(nullable=True)  # type: ignore[valid-type]
    resolution_hours: Series[float] = pa.Field(nullable=True, ge=0)

    @pa.check("created_at", "updated_at", "solved_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class SurveyResponse(_Contract):
    response_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    account_id: Series[str] = pa.Field(str_length={"min_value": 1})
    respondent_email: Series[str] = pa.Field(nullable=True, str_matches=_EMAIL)
    score: Series[int] = pa.Field(ge=0, le=10)
    comment: Series[str] = pa.Field(nullable=True)
    submitted_at: Series[UtcTimestamp]  # type: ignore[valid-type]

    @pa.check("submitted_at", name="not_in_future")
    def _timestamps_known(cls, series: pd.Series) -> pd.Series:
        return _not_in_future(series)


class TableSpec:
    """A canonical table: its contract, primary key and version column."""

    def __init__(
        self, name: str, contract: type[_Contract], key: str, version: str, mutable: bool
    ) -> None:
        self.name = name
        self.contract = contract
        self.key = key
        # Among rows that share a key, the one with the largest version is current.
        self.version = version
        # Mutable tables (CRM records, tickets) take newer versions of a row; the others are
        # append-only logs where a repeated key is a duplicate.
        self.mutable = mutable

    @property
    def columns(self) -> list[str]:
        return list(self.contract.to_schema().columns)

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.contract.validate(frame, lazy=True)

    @property
    def arrow_schema(self) -> pyarrow.Schema:
        """Storage types in the lake: timestamps are UTC microseconds, Delta's unit."""
        columns = self.contract.to_schema().columns
        return pyarrow.schema(
            [pyarrow.field(name, _arrow_type(str(col.dtype))) for name, col in columns.items()]
        )

    def to_arrow(self, frame: pd.DataFrame) -> pyarrow.Table:
        """Rows of this table as Arrow with the lake's types, whatever pandas inferred."""
        return pyarrow.Table.from_pandas(
            frame[self.columns], schema=self.arrow_schema, preserve_index=False, safe=False
        )

    def empty_frame(self) -> pd.DataFrame:
        return self.contract.to_schema().coerce_dtype(pd.DataFrame(columns=self.columns))

    def __repr__(self) -> str:
        return f"TableSpec({self.name!r})"


def _arrow_type(dtype: str) -> pyarrow.DataType:
    if dtype.startswith("datetime64"):
        return pyarrow.timestamp("us", tz="UTC")
    return {
        "str": pyarrow.string(),
        "int64": pyarrow.int64(),
        "float64": pyarrow.float64(),
        "bool": pyarrow.bool_(),
    }[dtype]


CANONICAL_TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec("accounts", Account, "account_id", "updated_at", mutable=True),
        TableSpec("contacts", Contact, "contact_id", "updated_at", mutable=True),
        TableSpec("subscriptions", Subscription, "change_id", "effective_at", mutable=False),
        TableSpec("billing_events", BillingEvent, "event_id", "occurred_at", mutable=False),
        TableSpec("usage_events", UsageEvent, "message_id", "occurred_at", mutable=False),
        TableSpec("tickets", Ticket, "ticket_id", "updated_at", mutable=True),
        TableSpec("survey_responses", SurveyResponse, "response_id", "submitted_at", mutable=False),
    ]
}


def table_spec(name: str) -> TableSpec:
    """The canonical table called ``name``; a clear error names the valid ones."""
    try:
        return CANONICAL_TABLES[name]
    except KeyError:
        from csa.errors import ConfigError

        known = ", ".join(CANONICAL_TABLES)
        raise ConfigError(f"unknown canonical table {name!r}; use one of: {known}.") from None


def contract_summary() -> dict[str, Any]:
    """Column names and types per table, for documentation and the README."""
    return {
        name: {col: str(c.dtype) for col, c in spec.contract.to_schema().columns.items()}
        for name, spec in CANONICAL_TABLES.items()
    }
