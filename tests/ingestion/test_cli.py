"""``csa ingest`` through Typer's runner: exit codes, the JSON report and its keys."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from csa.cli import app

runner = CliRunner()


def test_ingest_writes_the_report_of_the_interface(home: Path, raw_company: Path) -> None:
    report_path = home / "ingest.json"
    result = runner.invoke(app, ["ingest", "--report", str(report_path)])

    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    usage = report["sources"]["product_usage"]
    for key in ("read", "accepted", "duplicates", "quarantined", "quarantine_path"):
        assert key in usage
    assert usage["accepted"] == 3


def test_ingest_exits_non_zero_only_when_a_source_failed(home: Path, raw_company: Path) -> None:
    with (raw_company / "usage_events_2024-03.jsonl").open("a") as handle:
        handle.write("garbage\n")
    assert runner.invoke(app, ["ingest"]).exit_code == 0  # a quarantined line is not a failure

    (raw_company / "support_tickets.json").write_text("[")
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 1
    assert "support_tickets" in result.output


def test_ingest_from_another_raw_folder(home: Path, tmp_path: Path) -> None:
    from tests.ingestion.tiny_company import write_company

    raw = write_company(tmp_path / "exports")
    result = runner.invoke(app, ["ingest", "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert (home / "data" / "lake" / "accounts").is_dir()


def test_every_command_has_help() -> None:
    for command in (["--help"], ["ingest", "--help"], ["simulate", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, command
