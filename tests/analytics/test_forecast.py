"""Revenue at risk and the NRR forecast: their arithmetic, and a backtest against the lake."""

from __future__ import annotations

import numpy as np
import pytest

from csa.analytics import backtest, forecast_quarter
from csa.analytics.forecast import COMPANY


@pytest.fixture(scope="module")
def today(company):
    return forecast_quarter(company)


@pytest.mark.slow
def test_revenue_at_risk_is_churn_probability_times_mrr(today):
    accounts = today.accounts
    assert np.allclose(accounts["revenue_at_risk"], accounts["p_churn"] * accounts["mrr"])
    assert np.allclose(
        accounts["expected_expansion"],
        accounts["p_expand"] * today.uplift.expansion * accounts["mrr"],
    )
    company = today.groups.loc[COMPANY]
    assert company["revenue_at_risk"] == pytest.approx(accounts["revenue_at_risk"].sum())
    assert company["forecast_nrr"] == pytest.approx(
        accounts["expected_mrr"].sum() / accounts["mrr"].sum()
    )
    assert company["low"] <= company["forecast_nrr"] <= company["high"]
    assert today.uplift.expansion > 0  # expanded accounts grew


@pytest.mark.slow
def test_backtest_compares_past_forecasts_with_what_happened(company):
    history = backtest(company)
    firm = history.loc[history["group"] == COMPANY]
    assert len(firm) == company.analytics.backtest_origins
    assert (firm["actual_nrr"].between(0.5, 1.5)).all()
    assert np.allclose(firm["error"], firm["forecast_nrr"] - firm["actual_nrr"])
    # A month of a small simulated company: the forecast lands within 10 points.
    assert firm["error"].abs().max() < 0.10
