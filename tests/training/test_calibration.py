"""Calibration error, the choice of correction, and risk bands, on data with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from csa.training.calibration import (
    Calibrator,
    choose_bands,
    choose_calibrator,
    expected_calibration_error,
    fit_calibrator,
)


def outcomes(p: np.ndarray, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(len(p)) < p).astype(np.int64)


def test_ece_is_the_size_weighted_gap_between_predicted_and_observed_rates() -> None:
    # Two equal bins: predicted 0.1 where 0.5 happened, predicted 0.9 where 0.5 happened.
    y = np.array([0, 1] * 5 + [1, 0] * 5)
    p = np.array([0.1] * 10 + [0.9] * 10)

    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.4)
    assert expected_calibration_error(y, np.full(20, 0.5), bins=2) == pytest.approx(0.0)


def test_an_overconfident_model_is_corrected_and_its_error_falls() -> None:
    rng = np.random.default_rng(1)
    truth = rng.beta(1, 8, 20_000)
    y = outcomes(truth, 2)
    overconfident = np.sqrt(truth)  # every probability far too high

    choice = choose_calibrator(y[:10_000], overconfident[:10_000], seed=3)
    corrected = choice.calibrator.apply(overconfident[10_000:])

    assert choice.calibrator.method in ("platt", "isotonic")
    before = expected_calibration_error(y[10_000:], overconfident[10_000:])
    after = expected_calibration_error(y[10_000:], corrected)
    assert after < before / 5
    assert after < 0.01


def test_a_calibrated_model_is_left_alone() -> None:
    rng = np.random.default_rng(4)
    truth = rng.beta(2, 6, 20_000)
    choice = choose_calibrator(outcomes(truth, 5), truth, seed=6)

    assert choice.calibrator.method == "none"


def test_calibration_maps_are_monotone_and_round_trip_as_plain_numbers() -> None:
    rng = np.random.default_rng(7)
    raw = rng.random(5_000)
    y = outcomes(raw**2, 8)
    grid = np.linspace(0, 1, 201)
    for method in ("platt", "isotonic"):
        fitted = fit_calibrator(method, y, raw)  # type: ignore[arg-type]
        restored = Calibrator.from_dict(fitted.to_dict())

        assert np.all(np.diff(restored.apply(grid)) >= 0), method
        np.testing.assert_allclose(restored.apply(grid), fitted.apply(grid))
        assert all(0 < v < 1 for v in restored.apply(np.array([0.0, 1.0])))


def test_bands_hold_the_configured_shares_of_the_tuning_window() -> None:
    p = np.random.default_rng(9).random(10_000)
    bands = choose_bands(p, high_share=0.1, medium_share=0.2)
    labels = bands.bands(p)

    assert np.mean(labels == "high") == pytest.approx(0.1, abs=0.005)
    assert np.mean(labels == "medium") == pytest.approx(0.2, abs=0.005)
    assert bands.band(bands.high) == "high"
    assert bands.band(bands.medium - 1e-9) == "low"


def test_isotonic_calibration_keeps_the_ranking_it_was_given() -> None:
    rng = np.random.default_rng(10)
    raw = rng.random(2_000)
    y = outcomes(raw**3, 11)
    fitted = fit_calibrator("isotonic", y[:200], raw[:200])  # few rows: a coarse staircase

    calibrated = fitted.apply(raw)

    assert len(np.unique(np.round(fitted.y, 12))) < 50
    assert (np.argsort(calibrated, kind="stable") == np.argsort(raw, kind="stable")).all()
