"""MRR movements, GRR and NRR against values worked out by hand on a four-customer ledger.

Month-end MRR (Jan to Apr), as the transactions below produce it:

    A  100  120  120    0    expansion +20 in Feb, churn -120 in Apr
    B    0   50   50   40    new +50 in Feb, contraction -10 in Apr
    C  200    0    0  150    churn -200 in Feb, reactivation +150 in Apr
    D   80   80   80   80    steady

Feb: start 380, new 50, expansion 20, churn -200, end 250; GRR 180/380, NRR 200/380.
Mar: start 250, nothing moves, end 250.
Apr: start 250, churn -120, contraction -10, reactivation 150, end 270; GRR = NRR = 120/250.
"""

from __future__ import annotations

import pandas as pd
import pytest

from csa.analytics import (
    cohort_revenue_retention,
    cohort_tables,
    mrr_movements,
    period_retention,
    transaction_ledger,
)
from csa.analytics.revenue import waterfall, waterfall_figure
from csa.errors import ConfigError

MONTHLY = {
    "A": [100, 120, 120, 0],
    "B": [0, 50, 50, 40],
    "C": [200, 0, 0, 150],
    "D": [80, 80, 80, 80],
}


@pytest.fixture
def ledger():
    # Two payments in some months: the ledger sums a customer's month.
    rows = []
    for customer, amounts in MONTHLY.items():
        for month, amount in enumerate(amounts, start=1):
            if amount:
                rows.append((customer, f"2024-0{month}-03", amount / 2))
                rows.append((customer, f"2024-0{month}-20", amount / 2))
    frame = pd.DataFrame(rows, columns=["who", "when", "paid"])
    return transaction_ledger(frame, "who", "when", "paid")


def test_ledger_sums_each_customers_month(ledger):
    assert ledger.values.loc["A"].tolist() == [100, 120, 120, 0]
    assert [str(m) for m in ledger.months] == ["2024-01", "2024-02", "2024-03", "2024-04"]


def test_movements_match_the_hand_computed_values(ledger):
    moves = mrr_movements(ledger)
    feb, mar, apr = (moves.loc[pd.Period(m, "M")] for m in ("2024-02", "2024-03", "2024-04"))

    assert (feb["start"], feb["new"], feb["expansion"], feb["churn"], feb["end"]) == (
        380, 50, 20, -200, 250
    )  # fmt: skip
    assert feb["contraction"] == 0 and feb["reactivation"] == 0
    assert feb["grr"] == pytest.approx(180 / 380)
    assert feb["nrr"] == pytest.approx(200 / 380)
    assert mar["grr"] == mar["nrr"] == 1.0
    assert (apr["churn"], apr["contraction"], apr["reactivation"], apr["new"]) == (
        -120,
        -10,
        150,
        0,
    )
    assert apr["end"] == 270
    assert apr["grr"] == pytest.approx(120 / 250)
    assert apr["nrr"] == pytest.approx(120 / 250)
    assert (feb["new_customers"], apr["churned_customers"]) == (1, 1)


def test_movements_always_bridge_start_to_end(ledger):
    moves = mrr_movements(ledger)
    bridge = moves[["start", "new", "reactivation", "expansion", "contraction", "churn"]].sum(1)
    assert bridge.tolist() == moves["end"].tolist()


def test_period_retention_follows_the_starting_customers(ledger):
    quarter = period_retention(ledger, 3).loc[pd.Period("2024-04", "M")]
    # Start in Jan: A, C, D with 380. In Apr: A 0, C 150 (capped at 200), D 80.
    assert quarter["customers_at_start"] == 3
    assert quarter["nrr"] == pytest.approx(230 / 380)
    assert quarter["grr"] == pytest.approx(230 / 380)
    monthly = period_retention(ledger, 1).loc[pd.Period("2024-02", "M")]
    # A grew to 120 but GRR caps it at its 100: (100 + 0 + 80) / 380.
    assert monthly["grr"] == pytest.approx(180 / 380)
    assert monthly["nrr"] == pytest.approx(200 / 380)


def test_cohort_nrr_and_grr_by_age(ledger):
    tables = cohort_revenue_retention(ledger)
    nrr, grr = tables["nrr"], tables["grr"]
    # January cohort (A, C, D: 380): Feb 200, Apr 230; B's cohort (Feb, 50): Apr 40.
    assert nrr.loc["2024-01", 1] == pytest.approx(200 / 380)
    assert grr.loc["2024-01", 1] == pytest.approx(180 / 380)
    assert nrr.loc["2024-01", 3] == pytest.approx(230 / 380)
    assert nrr.loc["2024-02", 2] == pytest.approx(0.8)
    assert pd.isna(nrr.loc["2024-02", 3])  # B is not three months old yet


def test_logo_retention_counts_customers_old_enough(ledger):
    tables = cohort_tables(ledger)
    assert tables.customers.to_dict() == {"2024-01": 3, "2024-02": 1}
    assert tables.logo.loc["2024-01"].tolist() == pytest.approx([1, 2 / 3, 2 / 3, 2 / 3])
    assert tables.revenue.loc["2024-01", 3] == pytest.approx(230 / 380)
    assert tables.logo.loc["2024-02", 2] == 1.0


def test_waterfall_sums_the_months(ledger):
    steps = waterfall(mrr_movements(ledger))
    assert steps.to_dict() == {
        "start": 380,
        "new": 50,
        "reactivation": 150,
        "expansion": 20,
        "contraction": -10,
        "churn": -320,
        "end": 270,
    }
    figure = waterfall_figure(mrr_movements(ledger))
    assert figure.axes[0].get_ylabel() == "Monthly recurring revenue"


def test_cohorts_by_an_unknown_attribute_name_the_known_ones(ledger):
    with pytest.raises(ConfigError, match="no attribute 'plan'"):
        cohort_tables(ledger, by="plan")


def test_a_missing_column_is_named():
    frame = pd.DataFrame({"who": ["a"], "when": ["2024-01-01"], "paid": [1.0]})
    with pytest.raises(ConfigError, match="no column 'amount'"):
        transaction_ledger(frame, "who", "when", "amount")
