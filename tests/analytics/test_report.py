"""``csa report`` and ``csa analytics ...`` on a real small company."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from csa.analytics import AnalyticsContext, build_report, read_segments
from csa.cli import app
from tests.analytics.conftest import SMALL_COMPANY


@pytest.mark.slow
def test_report_is_one_offline_page_with_every_part(company, tmp_path):
    path = build_report(AnalyticsContext(company), tmp_path)
    page = path.read_text()

    for part in ("cohorts", "revenue", "segments", "survival", "risk"):
        assert f"id='{part}'" in page
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 8
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert "http" not in page  # nothing to fetch: reads offline
    stored = read_segments(company.analytics_dir)
    assert stored is not None and len(stored) > 0


@pytest.mark.slow
def test_each_analytics_command_writes_its_tables_and_plots(company, tmp_path, monkeypatch):
    monkeypatch.setenv("CSA_HOME", str(company.home))
    for key, value in SMALL_COMPANY.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    for part in ("segments", "revenue", "risk"):
        result = runner.invoke(app, ["analytics", part, "--out", str(tmp_path)])
        assert result.exit_code == 0, (part, result.output, repr(result.exception))
    movements = pd.read_csv(tmp_path / "revenue_movements.csv")
    assert {"new", "expansion", "contraction", "churn", "reactivation", "grr", "nrr"} <= set(
        movements.columns
    )
    assert (tmp_path / "revenue_waterfall.png").exists()
    assert (tmp_path / "segments_profiles.png").exists()
    backtest = pd.read_csv(tmp_path / "risk_backtest.csv")
    assert {"forecast_nrr", "actual_nrr", "error", "inside_interval"} <= set(backtest.columns)
