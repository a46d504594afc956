"""The ingest engine end to end on a tiny company: loads, duplicates, quarantine, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from csa.ingestion.engine import ingest
from csa.ingestion.lake import read_table, table_version
from csa.settings import Settings
from tests.ingestion.tiny_company import ACCOUNTS_CSV, usage_line


def _quarantined(report_path: str | None) -> list[dict]:
    assert report_path, "expected a quarantine file"
    return [json.loads(line) for line in Path(report_path).read_text().splitlines()]


def test_every_source_loads_into_its_canonical_table(settings: Settings, raw_company: Path) -> None:
    report = ingest(settings)

    assert report.ok
    accepted = {name: s.accepted for name, s in report.sources.items()}
    assert accepted == {
        "crm_accounts": 3,
        "crm_contacts": 2,
        "billing_subscriptions": 3,
        "billing_payments": 3,
        "support_tickets": 2,
        "product_usage": 3,
        "nps_survey": 2,
    }
    accounts = read_table(settings.lake_dir, "accounts").set_index("account_id")
    assert accounts.loc["ACC-2", "mrr"] == pytest.approx(3500.0)
    assert accounts.loc["ACC-1", "plan_tier"] == "growth"
    assert accounts.loc["ACC-2", "churned_at"] == pd.Timestamp("2024-06-01", tz="UTC")
    tickets = read_table(settings.lake_dir, "tickets").set_index("ticket_id")
    assert tickets.loc["101", "resolution_hours"] == pytest.approx(24.0)
    assert tickets.loc["101", "channel"] == "email"
    usage = read_table(settings.lake_dir, "usage_events").set_index("message_id")
    assert usage.loc["m-3", ["account_id", "event", "quantity"]].tolist() == [
        "ACC-2",
        "api_call",
        40,
    ]
    payments = read_table(settings.lake_dir, "billing_events")
    assert (payments["event_type"] == "payment_failed").sum() == 1


def test_second_ingest_of_the_same_files_accepts_nothing(
    settings: Settings, raw_company: Path
) -> None:
    first = ingest(settings)
    versions = {
        name: table_version(settings.lake_dir, s.table) for name, s in first.sources.items()
    }

    second = ingest(settings)

    for name, source in second.sources.items():
        assert source.accepted == 0, name
        assert source.duplicates == first.sources[name].accepted, name
    after = {name: table_version(settings.lake_dir, s.table) for name, s in second.sources.items()}
    assert after == versions, "an ingest that adds nothing must not commit a table version"


def test_malformed_usage_lines_are_quarantined_while_good_lines_load(
    settings: Settings, raw_company: Path
) -> None:
    export = raw_company / "usage_events_2024-03.jsonl"
    with export.open("a") as handle:
        handle.write("this is not json\n")
        handle.write(usage_line("m-bad-time", timestamp="yesterday-ish") + "\n")
        handle.write(
            usage_line("m-no-account", account="").replace('"groupId": ""', '"x": 1') + "\n"
        )
        handle.write(usage_line("m-4", event="Data Exported") + "\n")
        handle.write(usage_line("m-4", event="Data Exported") + "\n")  # exact duplicate

    usage = ingest(settings).sources["product_usage"]

    assert (usage.read, usage.accepted, usage.duplicates, usage.quarantined) == (8, 4, 1, 3)
    records = {r["origin"]: r for r in _quarantined(usage.quarantine_path)}
    assert records["usage_events_2024-03.jsonl:4"]["reasons"][0]["check"] == "parse_record"
    assert records["usage_events_2024-03.jsonl:4"]["original"] == "this is not json"
    bad_time = records["usage_events_2024-03.jsonl:5"]["reasons"]
    assert bad_time == [
        {"column": "occurred_at", "check": "parse_timestamp", "value": "yesterday-ish"}
    ]
    no_account = records["usage_events_2024-03.jsonl:6"]
    assert no_account["reasons"][0]["column"] == "account_id"
    assert "m-no-account" in no_account["original"]
    loaded = read_table(settings.lake_dir, "usage_events")
    assert sorted(loaded["message_id"]) == ["m-1", "m-2", "m-3", "m-4"]


def test_a_new_file_adds_only_its_new_events(settings: Settings, raw_company: Path) -> None:
    ingest(settings)
    lines = [usage_line("m-3", account="ACC-2", event="API Call Made", count=40), usage_line("m-9")]
    (raw_company / "usage_events_2024-04.jsonl").write_text("\n".join(lines) + "\n")

    usage = ingest(settings).sources["product_usage"]

    assert (usage.accepted, usage.duplicates) == (1, 4)
    assert len(read_table(settings.lake_dir, "usage_events")) == 4


def test_a_newer_crm_version_replaces_the_row_and_an_older_one_is_ignored(
    settings: Settings, raw_company: Path
) -> None:
    ingest(settings)
    newer = ACCOUNTS_CSV.replace(
        "ACC-1,Acme,Software,US,1-50,Growth,Monthly,10,40.0",
        "ACC-1,Acme,Software,US,1-50,Enterprise,Monthly,12,70.0",
    ).replace("2024-03-01T09:00:00Z", "2024-04-01T09:00:00Z")
    (raw_company / "crm_accounts.csv").write_text(newer)

    accounts = ingest(settings).sources["crm_accounts"]

    assert (accounts.accepted, accounts.duplicates) == (1, 2)
    stored = read_table(settings.lake_dir, "accounts").set_index("account_id")
    assert stored.loc["ACC-1", "plan_tier"] == "enterprise"
    assert stored.loc["ACC-1", "mrr"] == pytest.approx(840.0)
    assert len(stored) == 3

    (raw_company / "crm_accounts.csv").write_text(ACCOUNTS_CSV)  # the older export again
    again = ingest(settings).sources["crm_accounts"]
    assert again.accepted == 0
    assert (
        read_table(settings.lake_dir, "accounts").set_index("account_id").loc["ACC-1", "plan_tier"]
        == "enterprise"
    )


def test_an_unreadable_file_fails_its_source_and_the_others_still_load(
    settings: Settings, raw_company: Path
) -> None:
    (raw_company / "support_tickets.json").write_text('{"tickets": [{"id": 1,')

    report = ingest(settings)

    tickets = report.sources["support_tickets"]
    assert tickets.status == "failed"
    assert "support_tickets.json" in str(tickets.error)
    assert not report.ok
    assert report.sources["crm_accounts"].accepted == 3
    assert report.sources["product_usage"].accepted == 3


def test_a_missing_export_fails_only_its_source(settings: Settings, raw_company: Path) -> None:
    (raw_company / "nps_responses.csv").unlink()

    report = ingest(settings)

    assert report.sources["nps_survey"].status == "failed"
    assert "no file matches" in str(report.sources["nps_survey"].error)
    assert report.sources["crm_contacts"].status == "ok"
