"""Cohort tables on the real CDNOW transactions (69,659 purchases by 23,570 customers who first
bought in early 1997), read from the data file the ``lifetimes`` package ships.

Only the data file is used: ``lifetimes`` itself does not import cleanly on current pandas.
The tables are checked against an independent count done directly on the transactions.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.analytics import cohort_tables, read_transactions, transaction_ledger
from csa.cli import app


@pytest.fixture(scope="module")
def cdnow_path() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    assert path.exists(), f"lifetimes no longer ships {path}"
    return path


@pytest.fixture(scope="module")
def cdnow(cdnow_path: Path) -> pd.DataFrame:
    return read_transactions(cdnow_path)


@pytest.fixture(scope="module")
def tables(cdnow: pd.DataFrame):
    return cohort_tables(transaction_ledger(cdnow, "customer_id", "date", "dollar_value"))


def _by_hand(cdnow: pd.DataFrame) -> pd.DataFrame:
    """Customer, purchase month and months since the customer's first paid month."""
    paid = cdnow.assign(
        month=pd.to_datetime(cdnow["date"], format="%Y%m%d").dt.to_period("M"),
        dollars=cdnow["dollar_value"].astype(float),
    )
    paid = paid.loc[paid["dollars"] > 0]
    first = paid.groupby("customer_id")["month"].min().rename("cohort")
    paid = paid.join(first, on="customer_id")
    paid["age"] = (paid["month"] - paid["cohort"]).apply(lambda offset: offset.n)
    return paid


def test_every_paying_customer_is_in_one_cohort(cdnow, tables):
    paying = cdnow.loc[cdnow["dollar_value"].astype(float) > 0, "customer_id"].nunique()
    assert tables.customers.sum() == paying
    # CDNOW is the cohort of customers whose first purchase was in the first quarter of 1997.
    assert tables.customers[["1997-01", "1997-02", "1997-03"]].sum() / paying > 0.999


def test_cohort_sizes_and_retention_match_an_independent_count(cdnow, tables):
    paid = _by_hand(cdnow)
    for cohort in ("1997-01", "1997-02", "1997-03"):
        members = paid.loc[paid["cohort"] == pd.Period(cohort, "M")]
        size = members["customer_id"].nunique()
        assert tables.customers[cohort] == size
        for age in (1, 3, 6, 12):
            active = members.loc[members["age"] == age, "customer_id"].nunique()
            assert tables.logo.loc[cohort, age] == pytest.approx(active / size)
            spent = members.groupby("age")["dollars"].sum()
            assert tables.revenue.loc[cohort, age] == pytest.approx(spent[age] / spent[0])


def test_cdnow_retention_has_its_known_shape(tables):
    # Most first-time buyers never come back: about 15% buy again in the next month, and the
    # share settles well under a tenth after a year.
    january = tables.logo.loc["1997-01"]
    assert 0.10 < january[1] < 0.20
    assert january[12] < january[1]
    assert 0.04 < january[12] < 0.10


def test_the_cli_writes_cohort_tables_and_plots_for_a_table(cdnow_path, tmp_path, home):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["analytics", "cohorts", "--out", str(out), "--table", str(cdnow_path),
         "--customer", "customer_id", "--time", "date", "--amount", "dollar_value"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    logo = pd.read_csv(out / "cohorts_logo_retention_by_signup_month.csv", index_col=0)
    assert logo.loc["1997-01", "customers"] > 7_000
    assert (out / "cohorts_curves.png").stat().st_size > 10_000


def test_survival_on_a_transaction_table_is_refused_with_the_reason(cdnow_path, tmp_path, home):
    result = CliRunner().invoke(
        app,
        ["analytics", "survival", "--out", str(tmp_path), "--table", str(cdnow_path),
         "--customer", "customer_id", "--time", "date", "--amount", "dollar_value"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "needs the feature store" in result.output


def test_a_table_without_its_column_names_is_refused(cdnow_path, tmp_path, home):
    result = CliRunner().invoke(
        app, ["analytics", "revenue", "--out", str(tmp_path), "--table", str(cdnow_path)]
    )
    assert result.exit_code == 1
    assert "--customer COL" in result.output


def test_transaction_customers_get_recency_frequency_and_spend(cdnow):
    from csa.analytics import customer_behaviour

    ledger = transaction_ledger(cdnow, "customer_id", "date", "dollar_value")
    features, active = customer_behaviour(ledger)
    # Customer 00003 bought in 1997-01, -03, -04, -11 (two orders) and 1998-05, of the 18
    # months from 1997-01 to 1998-06.
    row = features.loc["00003"]
    assert row["recency_months"] == 1
    assert row["tenure_months"] == 17
    assert row["active_month_share"] == pytest.approx(5 / 18)
    assert row["monthly_spend"] == pytest.approx((20.76 + 20.76 + 19.54 + 78.41 + 16.99) / 5)
    assert bool(active["00003"]) and not bool(active["00001"])
