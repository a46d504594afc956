"""The customer view of one account: profile, usage, scores, tickets, comments, sentiment, plays.

The CRM, ticket and survey tables are read from the lake once and again only when a table's
Delta version changes, so a view costs dictionary lookups, not lake scans. Usage comes from the
online features the scores use. The sentiment summary comes from the scored texts that
``csa score sentiment`` writes (``data/features/text_sentiment.parquet``), re-read when the file
changes. Fields a role may not see are replaced by
``{"masked": true}`` and listed under ``masked``; every view that shows a sensitive group is
appended to the ``access`` audit log with the groups shown, never their values.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from csa.audit import append_record
from csa.errors import LakeError
from csa.features.definitions import JOIN_KEY
from csa.features.text_sentiment import read_text_scores, text_scores_path
from csa.ingestion.lake import read_table, table_exists, table_version
from csa.playbooks import actions, load_playbook, playbook_path
from csa.serving.access import Role
from csa.serving.scoring import ChampionScorer, UnknownAccount
from csa.settings import Settings

MASKED = {"masked": True}
USAGE_FIELDS = (
    "active_users_7d",
    "active_users_30d",
    "events_7d",
    "events_30d",
    "events_90d",
    "events_trend_7v28",
    "active_users_trend_7v28",
    "days_since_last_activity",
    "feature_breadth_30d",
    "seat_utilization",
    "events_1d",
)
_TABLES = ("accounts", "contacts", "tickets", "survey_responses")
_RECENT = 5
SENTIMENT_WINDOW_DAYS = 90


class LakeSnapshot:
    """The lake's small tables grouped by account, reloaded when a table changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._versions: dict[str, int | None] = {}
        self._groups: dict[str, dict[str, pd.DataFrame]] = {}
        self._checked: dict[str, float] = {}

    def rows(self, table: str, account_id: str) -> pd.DataFrame:
        self._refresh(table)
        groups = self._groups.get(table, {})
        return groups.get(account_id, pd.DataFrame())

    def _refresh(self, table: str) -> None:
        # Asking Delta for the version costs a file listing: at most once a second per table.
        now = time.monotonic()
        if table in self._groups and now - self._checked.get(table, 0.0) < 1.0:
            return
        self._checked[table] = now
        lake = self.settings.lake_dir
        version = table_version(lake, table) if table_exists(lake, table) else None
        if table in self._groups and self._versions.get(table) == version:
            return
        with self._lock:
            frame = read_table(lake, table) if version is not None else pd.DataFrame()
            self._groups[table] = (
                {str(k): g for k, g in frame.groupby(JOIN_KEY)} if len(frame) else {}
            )
            self._versions[table] = version


class TextScores:
    """The scored texts grouped by account, re-read when the scoring rewrites the file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path: Path = text_scores_path(settings)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = 0.0
        self._groups: dict[str, pd.DataFrame] = {}
        self.newest: pd.Timestamp | None = None

    def rows(self, account_id: str) -> pd.DataFrame:
        self._refresh()
        return self._groups.get(account_id, pd.DataFrame())

    def _refresh(self) -> None:
        # A stat per second at most; the file is replaced whole, so its mtime marks a new one.
        now = time.monotonic()
        if self._mtime is not None and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            mtime: float | None = self.path.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime and (mtime is not None or not self._groups):
            return
        with self._lock:
            scores = read_text_scores(self.settings)
            self._groups = {str(k): g for k, g in scores.groupby(JOIN_KEY)} if len(scores) else {}
            # The window ends at the newest text the platform holds: today, on a live company.
            self.newest = pd.Timestamp(scores["written_at"].max()) if len(scores) else None
            self._mtime = mtime


class CustomerView:
    """Builds the view of one account for one role."""

    def __init__(self, settings: Settings, scorer: ChampionScorer) -> None:
        self.settings = settings
        self.scorer = scorer
        self.lake = LakeSnapshot(settings)
        self.texts = TextScores(settings)
        self.plays = load_playbook(playbook_path(settings))

    def view(self, account_id: str, role: Role, key_id: str | None) -> dict[str, Any]:
        """Everything about one account that ``role`` may see.

        Raises:
            UnknownAccount: the account is in neither the CRM table nor the online store.
        """
        account = self.lake.rows("accounts", account_id)
        if account.empty:
            raise UnknownAccount(
                f"account {account_id!r} is not in the CRM table of the lake; check the id."
            )
        row = account.sort_values("updated_at").iloc[-1]
        shows = role.fields

        # Scores, usage and the plays they call for
        scores: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for model in ("churn", "expansion"):
            try:
                scored = self.scorer.score(model, [account_id])[0]
            except (UnknownAccount, LakeError):
                continue
            except Exception as exc:  # one model down must not hide the rest of the view
                scores[model] = {"error": str(exc)}
                continue
            scores[model] = scored
            values[f"{model}.probability"] = scored.get("probability")
            values[f"{model}.band"] = scored.get("risk_band")
        features = self.scorer.reader.read("churn", [account_id])[account_id]
        values.update({name: value.value for name, value in features.items()})
        usage = {name: values.get(name) for name in USAGE_FIELDS}

        view = {
            "account_id": account_id,
            "profile": self._profile(row, "contract" in shows),
            "contacts": self._contacts(account_id, "contacts" in shows),
            "usage": usage,
            "scores": scores,
            "open_tickets": self._tickets(account_id, "texts" in shows),
            "recent_comments": self._comments(account_id, "texts" in shows),
            "sentiment": self._sentiment(account_id, "texts" in shows),
            "playbook": actions(self.plays, values),
            "masked": sorted({"contacts", "texts", "contract"} - set(shows)),
        }
        shown = sorted(set(shows) & {"contacts", "texts", "contract"})
        if shown:
            append_record(
                self.settings,
                "access",
                {
                    "event": "read",
                    "path": "/account",
                    "account_id": account_id,
                    "key_id": key_id,
                    "role": role.name,
                    "fields": shown,
                },
            )
        return view

    def _profile(self, row: pd.Series, contract: bool) -> dict[str, Any]:
        profile = {
            "name": row["account_name"],
            "industry": row["industry"],
            "country": row["country"],
            "size_band": row["size_band"],
            "plan_tier": row["plan_tier"],
            "billing_period": row["billing_period"],
            "status": row["status"],
            "csm_owner": row["csm_owner"],
            "contract_start": _iso(row["contract_start"]),
            "renewal_date": _iso(row["renewal_date"]),
        }
        for field in ("seats", "price_per_seat", "mrr"):
            profile[field] = _plain(row[field]) if contract else MASKED
        return profile

    def _contacts(self, account_id: str, visible: bool) -> list[dict[str, Any]]:
        contacts = self.lake.rows("contacts", account_id)
        out = []
        for contact in contacts.itertuples(index=False):
            out.append(
                {
                    "name": f"{contact.first_name} {contact.last_name}" if visible else MASKED,
                    "email": contact.email if visible else MASKED,
                    "title": contact.title if visible else MASKED,
                    "is_primary": bool(contact.is_primary),
                }
            )
        return out

    def _tickets(self, account_id: str, visible: bool) -> list[dict[str, Any]]:
        tickets = self.lake.rows("tickets", account_id)
        if tickets.empty:
            return []
        open_ = tickets[~tickets["status"].isin(["solved", "closed"])]
        open_ = open_.sort_values("created_at", ascending=False).head(_RECENT * 2)
        return [
            {
                "ticket_id": t.ticket_id,
                "priority": t.priority,
                "status": t.status,
                "created_at": _iso(t.created_at),
                "subject": t.subject if visible else MASKED,
                "body": t.body if visible else MASKED,
            }
            for t in open_.itertuples(index=False)
        ]

    def _comments(self, account_id: str, visible: bool) -> list[dict[str, Any]]:
        answers = self.lake.rows("survey_responses", account_id)
        if answers.empty:
            return []
        recent = answers.sort_values("submitted_at", ascending=False).head(_RECENT)
        return [
            {
                "submitted_at": _iso(a.submitted_at),
                "score": _plain(a.score),
                "comment": (a.comment if visible else MASKED) if _plain(a.comment) else None,
            }
            for a in recent.itertuples(index=False)
        ]

    def _sentiment(self, account_id: str, visible: bool) -> dict[str, Any]:
        """Mean score, negative share and counts over the window; the recent negative texts."""
        scored = self.texts.rows(account_id)
        newest = self.texts.newest
        summary: dict[str, Any] = {
            "window_days": SENTIMENT_WINDOW_DAYS,
            "window_end": _iso(newest),
            "texts": 0,
            "tickets": 0,
            "survey_comments": 0,
            "mean_score": None,
            "negative_share": None,
            "negative": 0,
            "model_version": None,
            "recent_negative": [],
        }
        if scored.empty or newest is None:
            return summary
        start = newest - pd.Timedelta(days=SENTIMENT_WINDOW_DAYS)
        window = scored[scored["written_at"] > start]
        if window.empty:
            return summary
        negative = window[window["label"] == "negative"]
        versions = sorted(set(window["model_version"].astype(str)))
        summary.update(
            texts=len(window),
            tickets=int((window["source"] == "ticket").sum()),
            survey_comments=int((window["source"] == "survey").sum()),
            mean_score=round(float(window["score"].mean()), 4),
            negative_share=round(len(negative) / len(window), 4),
            negative=len(negative),
            model_version=",".join(versions),
            recent_negative=self._negative_texts(account_id, negative, visible),
        )
        return summary

    def _negative_texts(
        self, account_id: str, negative: pd.DataFrame, visible: bool
    ) -> list[dict[str, Any]]:
        recent = negative.sort_values("written_at", ascending=False).head(_RECENT)
        tickets = self.lake.rows("tickets", account_id)
        answers = self.lake.rows("survey_responses", account_id)
        out = []
        for row in recent.itertuples(index=False):
            kind, _, source_id = str(row.text_id).partition(":")
            item: dict[str, Any] = {
                "source": kind,
                "id": source_id,
                "written_at": _iso(row.written_at),
                "score": round(float(row.score), 4),
            }
            if kind == "ticket":
                match = _by_id(tickets, "ticket_id", source_id)
                item["status"] = None if match is None else match["status"]
                item["subject"] = _text(match, "subject", visible)
                item["text"] = _text(match, "body", visible)
            else:
                item["text"] = _text(_by_id(answers, "response_id", source_id), "comment", visible)
            out.append(item)
        return out


def _by_id(frame: pd.DataFrame, column: str, value: str) -> pd.Series | None:
    if frame.empty or column not in frame.columns:
        return None
    match = frame[frame[column].astype(str) == value]
    return None if match.empty else match.iloc[-1]


def _text(row: pd.Series | None, column: str, visible: bool) -> Any:
    """A text field of a lake row, masked for a role without the texts group."""
    if not visible:
        return MASKED
    return None if row is None else _plain(row[column])


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
