"""Time to churn: the concordance index and Kaplan-Meier by hand, and the AFT model judged on a
later window against trivial baselines."""

from __future__ import annotations

import numpy as np
import pytest

from csa.analytics import concordance_index, fit_survival
from csa.analytics.survival import EXPERIMENT, expected_months, kaplan_meier, survival_curves


def test_concordance_counts_comparable_pairs_by_hand():
    durations = np.array([1.0, 2.0, 3.0, 4.0])
    events = np.array([1, 1, 0, 1])
    # Comparable pairs (shorter one churned): (0,1) (0,2) (0,3) (1,2) (1,3); 2 is censored.
    perfect = np.array([1.0, 2.0, 3.0, 4.0])
    assert concordance_index(durations, events, perfect) == 1.0
    assert concordance_index(durations, events, perfect[::-1]) == 0.0
    # Swap 1 and 2: pair (1,2) is now wrong, 4 of 5 right.
    assert concordance_index(durations, events, np.array([1.0, 3.0, 2.0, 4.0])) == 0.8
    assert concordance_index(durations, events, np.ones(4)) == 0.5


def test_kaplan_meier_by_hand():
    durations = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    events = np.array([1, 1, 0, 1, 0])
    # t=1: 1 of 5 churn -> 0.8; t=2: 1 of 4 -> 0.6; t=3: 1 of 2 -> 0.3.
    grid = np.array([0.0, 1.0, 2.5, 3.0, 10.0])
    assert kaplan_meier(durations, events, grid) == pytest.approx([1.0, 0.8, 0.6, 0.3, 0.3])


def test_survival_curves_fall_and_expected_months_are_capped():
    log_time = np.log(np.array([2.0, 20.0]))
    curves = survival_curves(log_time, np.array([1.0, 2.0, 20.0]))
    assert curves[0, 1] == pytest.approx(0.5)  # the median is exp(mu)
    assert curves[1, 2] == pytest.approx(0.5)
    assert np.all(np.diff(curves, axis=1) < 0)
    months = expected_months(log_time, cap=24)
    assert months[0] < months[1] <= 24


@pytest.mark.slow
def test_survival_model_beats_a_constant_on_a_later_window(company):
    import mlflow

    result = fit_survival(company)

    assert result.test_events >= 5
    assert result.concordance > result.baselines["constant"] + 0.1
    assert result.concordance > result.baselines["tenure_days"]
    accounts = result.accounts
    assert accounts["expected_months"].between(0, company.analytics.survival_months).all()
    assert (accounts["survival_3m"] >= accounts["survival_12m"]).all()
    assert set(result.curves.index) == set(accounts["account_id"])
    # Logged to MLflow like the other models.
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["c_index"] == pytest.approx(result.concordance)
    assert mlflow.get_experiment(run.info.experiment_id).name == EXPERIMENT
