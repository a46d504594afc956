"""Each canonical table's contract refuses the rows it should, naming column and check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csa.ingestion.engine import ingest
from csa.settings import Settings


def _reasons(settings: Settings, source: str) -> dict[str, set[tuple[str, str]]]:
    result = ingest(settings, only=[source]).sources[source]
    assert result.status == "ok", result.error
    assert result.quarantine_path, f"{source}: nothing was quarantined"
    records = [json.loads(line) for line in Path(result.quarantine_path).read_text().splitlines()]
    return {r["origin"]: {(x["column"], x["check"]) for x in r["reasons"]} for r in records}


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def test_accounts_contract(settings: Settings, raw_company: Path) -> None:
    _append(
        raw_company / "crm_accounts.csv",
        "ACC-4,Hooli,Software,usa,1-50,Growth,Monthly,10,40,2024-01-01,2024-02-01,X,Active,,"
        "2024-01-01T00:00:00Z,2024-01-01T00:00:00Z",
        "ACC-5,Vandelay,Import,US,huge,Platinum,Weekly,0,-1,2024-01-01,2024-02-01,X,Active,,"
        "2024-01-01T00:00:00Z,2024-01-01T00:00:00Z",
        "ACC-6,Future,Retail,US,1-50,Growth,Monthly,3,10,2024-01-01,2024-02-01,X,Active,,"
        "2099-01-01T00:00:00Z,2099-01-01T00:00:00Z",
    )
    reasons = _reasons(settings, "crm_accounts")

    assert ("country", "str_matches('^[A-Z]{2}$')") in reasons["crm_accounts.csv:5"]
    refused = {column for column, _ in reasons["crm_accounts.csv:6"]}
    assert {"size_band", "plan_tier", "billing_period", "seats", "price_per_seat"} <= refused
    assert ("created_at", "not_in_future") in reasons["crm_accounts.csv:7"]


def test_contacts_contract_refuses_an_invalid_email(settings: Settings, raw_company: Path) -> None:
    _append(
        raw_company / "crm_contacts.csv",
        "C-3,ACC-1,Cy,Cole,not-an-email,CEO,maybe,2024-01-05T09:00:00Z,2024-01-05T09:00:00Z",
    )
    reasons = _reasons(settings, "crm_contacts")["crm_contacts.csv:4"]
    assert ("email", r"str_matches('^[^@\s]+@[^@\s]+\.[^@\s]+$')") in reasons
    assert ("is_primary", "parse_bool") in reasons


def test_subscriptions_contract_refuses_unknown_changes(
    settings: Settings, raw_company: Path
) -> None:
    _append(
        raw_company / "billing_subscriptions.csv",
        "CH-9,SUB-1,ACC-1,pause,growth,month,10,40,-5,400,2024-03-05T09:00:00Z,,active",
    )
    reasons = _reasons(settings, "billing_subscriptions")["billing_subscriptions.csv:5"]
    assert {
        (
            "change_type",
            "isin(['new', 'seat_increase', 'seat_decrease', 'upgrade', "
            "'downgrade', 'renewal', 'cancellation'])",
        ),
        ("mrr", "greater_than_or_equal_to(0)"),
    } <= reasons


def test_billing_contract_refuses_negative_amounts_and_unknown_outcomes(
    settings: Settings, raw_company: Path
) -> None:
    _append(
        raw_company / "billing_invoices.csv",
        "PAY-9,INV-9,ACC-1,SUB-1,2024-03-05T09:00:00Z,-10,usd,lost,",
        "PAY-10,INV-9,,SUB-1,2024-03-05T09:00:00Z,10,US Dollar,succeeded,",
    )
    reasons = _reasons(settings, "billing_payments")
    assert {c for c, _ in reasons["billing_invoices.csv:5"]} == {"amount", "event_type"}
    assert {c for c, _ in reasons["billing_invoices.csv:6"]} == {"account_id", "currency"}


def test_ticket_contract_refuses_unknown_priority(settings: Settings, raw_company: Path) -> None:
    path = raw_company / "support_tickets.json"
    export = json.loads(path.read_text())
    export["tickets"].append({**export["tickets"][0], "id": 103, "priority": "panic"})
    path.write_text(json.dumps(export))

    reasons = _reasons(settings, "support_tickets")["support_tickets.json:record 3"]
    assert {c for c, _ in reasons} == {"priority"}


def test_survey_contract_refuses_a_score_outside_zero_to_ten(
    settings: Settings, raw_company: Path
) -> None:
    _append(
        raw_company / "nps_responses.csv", "R-3,ACC-1,ana@acme.example,11,Wow,2024-03-02T10:00:00Z"
    )
    assert _reasons(settings, "nps_survey")["nps_responses.csv:4"] == {
        ("score", "less_than_or_equal_to(10)")
    }


@pytest.mark.parametrize("timestamp", ["2024-03-01T11:00:00+01:00", "2024-03-01 10:00:00"])
def test_timestamps_with_an_offset_or_none_are_stored_in_utc(
    settings: Settings, raw_company: Path, timestamp: str
) -> None:
    from csa.ingestion.lake import read_table
    from tests.ingestion.tiny_company import usage_line

    (raw_company / "usage_events_2024-03.jsonl").write_text(usage_line("m-tz", timestamp=timestamp))
    ingest(settings, only=["product_usage"])
    stored = read_table(settings.lake_dir, "usage_events")["occurred_at"].iloc[0]
    assert stored.isoformat() == "2024-03-01T10:00:00+00:00"
