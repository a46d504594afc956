"""The drift policy file, the drift statistics against Evidently's, and the decision rules."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csa.errors import ConfigError
from csa.monitoring import DriftPolicy, WindowVerdict, decide, feature_drift, load_policy
from csa.monitoring.drift import FeatureDrift, normed_wasserstein
from csa.monitoring.monitor import parse_every, run_every
from csa.settings import REPO_ROOT


def test_the_shipped_policy_is_valid() -> None:
    policy = load_policy(REPO_ROOT / "configs" / "drift_policy.yaml")
    assert policy.consecutive_windows >= 1
    assert set(policy.models) == {"churn", "expansion"}


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("window_days: 0\n", "window_days"),
        ("thresholds:\n  drifted_share: 2\n", "thresholds.drifted_share"),
        ("features:\n  weight: loudness\n", "features.weight"),
        ("models: [upsell]\n", "models"),
        ("cooldown: 3\n", "cooldown"),
    ],
)
def test_an_invalid_policy_names_the_file_and_the_key(
    tmp_path: Path, content: str, named: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_a_missing_policy_file_asked_for_by_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")


def evidently_values(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations inside Evidently's own dependencies
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=["spend", "tickets", "trend"], categorical_columns=["plan"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    return {
        m["config"]["column"]: float(m["value"])
        for m in snapshot.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }


def accounts(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "spend": rng.lognormal(5 + shift, 1.0, n),
            "tickets": rng.binomial(4, 0.2 + shift / 4, n).astype(float),
            "trend": rng.normal(shift, 1.0, n),
            "plan": rng.choice(
                ["starter", "growth", "enterprise"], n, p=[0.5 - shift / 2, 0.3, 0.2 + shift / 2]
            ),
        }
    )


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_our_distances_match_evidentlys_data_drift_preset(shift: float) -> None:
    rng = np.random.default_rng(3)
    reference, current = accounts(rng, 5_000, 0.0), accounts(rng, 5_000, shift)
    ours = {
        d.feature: d for d in feature_drift(reference, current, list(reference.columns), ["plan"])
    }
    theirs = evidently_values(reference, current)
    for column, value in theirs.items():
        assert ours[column].score == pytest.approx(value, abs=0.01), column
        assert ours[column].method == (
            "jensenshannon" if column in ("plan", "tickets") else "wasserstein"
        )


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=20, max_size=200),
    offset=st.floats(-100, 100),
)
def test_the_wasserstein_distance_of_a_shift_is_the_shift(
    values: list[float], offset: float
) -> None:
    reference = np.array(values)
    if np.std(reference) < 1:
        return
    distance = normed_wasserstein(reference, reference + offset)
    assert distance == pytest.approx(abs(offset) / np.std(reference), rel=1e-6, abs=1e-9)


def verdict(end: str, drifted: bool, rows: int = 1_000) -> WindowVerdict:
    feature = FeatureDrift(
        "events_30d", "wasserstein", 0.5 if drifted else 0.01, 0.1, drifted, 9, 9
    )
    return WindowVerdict(
        start=pd.Timestamp(end, tz="UTC") - pd.Timedelta(days=14),
        end=pd.Timestamp(end, tz="UTC"),
        rows=rows,
        judged=rows >= 300,
        drifted=drifted,
        drifted_share=1.0 if drifted else 0.0,
        features=[feature],
        reasons=["drifted features carry 100% of the weight"] if drifted else [],
    )


def test_drift_must_hold_in_consecutive_windows_and_respects_the_cooldown() -> None:
    policy = DriftPolicy(consecutive_windows=2, cooldown_days=60)
    once = [verdict("2025-03-15", True), verdict("2025-03-01", False)]
    twice = [verdict("2025-03-15", True), verdict("2025-03-01", True)]

    assert decide([verdict("2025-03-15", False)], policy, None, True).decision == "no_drift"
    assert decide(once, policy, None, True).decision == "drift_unconfirmed"
    assert decide(twice, policy, None, False).decision == "retrain_recommended"
    assert decide(twice, policy, None, True).decision == "retrain_due"
    recent = pd.Timestamp("2025-02-01", tz="UTC")
    cooling = decide(twice, policy, recent, True)
    assert cooling.decision == "drift_within_cooldown"
    assert "42 days" in cooling.reason
    assert decide(twice, policy, recent - pd.Timedelta(days=30), True).decision == "retrain_due"
    small = [verdict("2025-03-15", True, rows=12), verdict("2025-03-01", True)]
    assert decide(small, policy, None, True).decision == "window_too_small"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800)]
)
def test_intervals_are_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["1 hour", "h", "0m", "-5m"])
def test_a_bad_interval_is_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(ConfigError, match="--every"):
        parse_every(text)


def test_the_loop_finishes_its_pass_and_stops_on_a_signal() -> None:
    stop = threading.Event()
    passes: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:

        def one_pass() -> None:
            passes.append(len(passes))
            if len(passes) == 2:  # the signal arrives in the middle of the second pass
                os.kill(os.getpid(), signal.SIGTERM)

        count = run_every(one_pass, 0.01, stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert count == 2
    assert passes == [0, 1]


def snapshots(start: str, days: int, accounts_: int, level: float, seed: int) -> pd.DataFrame:
    """Daily snapshots of ``accounts_`` accounts whose ``spend`` sits around ``level``."""
    from csa.features.definitions import JOIN_KEY, SNAPSHOT_TIME

    # The same accounts every time, each at its own level, all moved by ``level``.
    base = np.random.default_rng(0).normal(0.0, 1.0, accounts_) + level
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=days, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            JOIN_KEY: np.tile([f"acc-{i}" for i in range(accounts_)], days),
            SNAPSHOT_TIME: np.repeat(times, accounts_),
            "spend": np.tile(base, days) + rng.normal(0, 0.05, accounts_ * days),
            "probability": 0.1,
        }
    )


def test_a_move_the_champions_own_test_windows_made_is_not_drift() -> None:
    from csa.monitoring import Reference
    from csa.monitoring.judgement import attach_history, judge_window
    from csa.monitoring.windows import Window

    policy = DriftPolicy(window_days=14, min_window_rows=100, history_windows=4)
    reference_rows = snapshots("2025-01-01", 30, 200, level=0.0, seed=1)
    reference = Reference(
        model="churn",
        version="1",
        frame=reference_rows,
        numeric=["spend"],
        categorical=[],
        importance={"spend": 1.0},
        known_until=pd.Timestamp("2025-03-02", tz="UTC"),
    )
    # The test windows after the reference wandered by 0.4 standard deviations...
    attach_history(reference, snapshots("2025-01-31", 30, 200, level=0.4, seed=2), policy)
    assert reference.history is not None
    assert reference.history["spend"] == pytest.approx(0.4, abs=0.05)

    def judged(level: float) -> FeatureDrift:
        rows = snapshots("2025-05-01", 14, 200, level=level, seed=3)
        window = Window(rows["as_of"].min() - pd.Timedelta(days=1), rows["as_of"].max(), rows)
        return judge_window(reference, window, policy).features[0]

    # ...so a later window as far away is what the company does anyway, and three times as far
    # is drift. Both clear the plain threshold (0.1) and the split-half noise.
    usual, moved = judged(0.45), judged(1.5)
    assert usual.score >= 0.1 and not usual.drifted
    assert usual.history == pytest.approx(reference.history["spend"])
    assert moved.drifted


def test_without_a_history_the_split_half_noise_alone_applies() -> None:
    from csa.monitoring import Reference
    from csa.monitoring.judgement import attach_history, judge_window
    from csa.monitoring.windows import Window

    policy = DriftPolicy(window_days=14, min_window_rows=100)
    reference = Reference(
        model="churn",
        version="1",
        frame=snapshots("2025-01-01", 30, 200, level=0.0, seed=1),
        numeric=["spend"],
        categorical=[],
        importance={"spend": 1.0},
    )
    attach_history(reference, pd.DataFrame(), policy)  # no known_until: nothing to measure
    assert reference.history == {}
    rows = snapshots("2025-05-01", 14, 200, level=0.45, seed=3)
    window = Window(rows["as_of"].min() - pd.Timedelta(days=1), rows["as_of"].max(), rows)
    drift = judge_window(reference, window, policy).features[0]
    assert drift.drifted and drift.history is None
