"""A brute-force oracle: account features at an instant, straight from the lake's rows.

Deliberately naive: for each (account, instant) it finds the snapshot Feast should serve (the
latest one at or before the instant, within the TTL, while the account was a customer) and
recomputes every feature at that snapshot with plain row filters, sharing no code with
``csa.features``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from csa.ingestion.contracts import USAGE_EVENTS

DAY = pd.Timedelta(days=1)
PERIOD_DAYS = {"monthly": 30.4375, "annual": 365.25}


class Oracle:
    """Features of any account at any instant, from the canonical tables."""

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        cadence_days: int,
        ttl_days: int,
        warmup_days: int,
    ) -> None:
        self.t = {name: frame.copy() for name, frame in tables.items()}
        self.cadence = pd.Timedelta(days=cadence_days)
        self.ttl = pd.Timedelta(days=ttl_days)
        ends = [
            self.t["usage_events"]["occurred_at"].max(),
            self.t["billing_events"]["occurred_at"].max(),
            self.t["subscriptions"]["effective_at"].max(),
            self.t["tickets"]["created_at"].max(),
            self.t["survey_responses"]["submitted_at"].max(),
        ]
        self.data_end = max(e for e in ends if pd.notna(e))
        self.last_snapshot = self.data_end.floor("D")
        # Behaviour starts with the first usage, payment, ticket or survey answer; contracts
        # reach further back. No snapshot describes the warm-up after it.
        behaviour = [
            self.t["usage_events"]["occurred_at"].min(),
            self.t["billing_events"]["occurred_at"].min(),
            self.t["tickets"]["created_at"].min(),
            self.t["survey_responses"]["submitted_at"].min(),
        ]
        self.first_snapshot = min(b for b in behaviour if pd.notna(b)) + pd.Timedelta(
            days=warmup_days
        )
        self.by_account = {
            name: dict(tuple(frame.groupby("account_id")))
            for name, frame in self.t.items()
            if name != "accounts"
        }
        self.accounts = self.t["accounts"].set_index("account_id")

    def _rows(self, table: str, account: str) -> pd.DataFrame:
        empty = self.t[table].iloc[0:0]
        return self.by_account[table].get(account, empty)

    def lifetime(self, account: str) -> tuple[pd.Timestamp, pd.Timestamp | None]:
        subs = self._rows("subscriptions", account)
        row = self.accounts.loc[account]
        starts = [row["contract_start"]] + ([subs["effective_at"].min()] if len(subs) else [])
        cancels = subs.loc[subs["change_type"] == "cancellation", "effective_at"]
        churns = [c for c in [row["churned_at"], cancels.min() if len(cancels) else None]]
        churns = [c for c in churns if c is not None and pd.notna(c)]
        return min(starts), (min(churns) if churns else None)

    def served_snapshot(self, account: str, instant: pd.Timestamp) -> pd.Timestamp | None:
        """The snapshot a point-in-time join must use for ``account`` at ``instant``."""
        if account not in self.accounts.index:
            return None
        start, churn = self.lifetime(account)
        instant = instant.tz_convert("UTC")
        # Latest grid time at or before the instant (the grid ends at the last snapshot).
        steps = math.ceil((self.last_snapshot - min(instant, self.last_snapshot)) / self.cadence)
        snapshot = self.last_snapshot - steps * self.cadence
        if churn is not None:
            while snapshot >= churn:
                snapshot -= self.cadence
        if snapshot < max(start, self.first_snapshot) or instant - snapshot > self.ttl:
            return None
        return snapshot

    def features(self, account: str, instant: pd.Timestamp) -> dict[str, Any] | None:
        """Every feature at the served snapshot, or None when nothing may be served."""
        s = self.served_snapshot(account, instant)
        return None if s is None else self.features_at(account, s)

    def features_at(self, account: str, s: pd.Timestamp) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out.update(self._usage(account, s))
        state = self._contract(account, s)
        out.update(self._profile(account, s, state))
        before = self._contract(account, s - 90 * DAY)
        out.update(self._billing(account, s, state, before))
        out.update(self._support(account, s))
        out.update(self._sentiment(account, s))
        seats = state["seats"] if state else None
        out["seat_utilization"] = _div(out["active_users_30d"], seats)
        out["events_1d_vs_30d_avg"] = _div(out["events_1d"], out["events_30d"] / 30.0)
        out["active_users_1d_per_seat"] = _div(out["active_users_1d"], seats)
        return out

    def _usage(self, account: str, s: pd.Timestamp) -> dict[str, Any]:
        ev = self._rows("usage_events", account)
        ev = ev[ev["occurred_at"] <= s]
        out: dict[str, Any] = {}
        for days in (1, 7, 28, 30, 90):
            w = ev[ev["occurred_at"] > s - days * DAY]
            out[f"active_users_{days}d"] = w["user_id"].nunique()
            out[f"events_{days}d"] = int(w["quantity"].sum())
            for event in USAGE_EVENTS:
                out[f"events_{event}_{days}d"] = int(w.loc[w["event"] == event, "quantity"].sum())
        out["events_trend_7v28"] = _div(out["events_7d"] / 7, out["events_28d"] / 28)
        out["active_users_trend_7v28"] = _div(out["active_users_7d"], out["active_users_28d"])
        last = ev["occurred_at"].max() if len(ev) else None
        out["days_since_last_activity"] = (
            None if last is None else (s - last).total_seconds() / 86_400
        )
        out["feature_breadth_30d"] = sum(out[f"events_{e}_30d"] > 0 for e in USAGE_EVENTS)
        return out

    def _contract(self, account: str, s: pd.Timestamp) -> dict[str, Any] | None:
        subs = self._rows("subscriptions", account)
        subs = subs[subs["effective_at"] <= s].sort_values(["effective_at", "change_id"])
        if subs.empty:
            return None
        latest = subs.groupby("subscription_id").tail(1)
        latest = latest[latest["status"] != "canceled"]
        if latest.empty:
            return None
        primary = latest.sort_values(["mrr", "subscription_id"], ascending=[False, True]).iloc[0]
        return {
            "plan_tier": primary["plan_tier"],
            "billing_period": primary["billing_period"],
            "period_end": primary["period_end"],
            "seats": int(latest["seats"].sum()),
            "mrr": float(latest["mrr"].sum()),
        }

    def _profile(self, account: str, s: pd.Timestamp, state: dict[str, Any] | None) -> dict:
        start, _ = self.lifetime(account)
        state = state or {}
        period_end = state.get("period_end")
        anchor = period_end if period_end is not None and pd.notna(period_end) else start
        delta = (anchor - s).total_seconds() / 86_400
        period = PERIOD_DAYS.get(state.get("billing_period"), float("nan"))  # type: ignore[arg-type]
        return {
            "plan_tier": state.get("plan_tier"),
            "size_band": self.accounts.loc[account, "size_band"],
            "billing_period": state.get("billing_period"),
            "seats": state.get("seats"),
            "mrr": state.get("mrr"),
            "tenure_days": (s - start).total_seconds() / 86_400,
            "days_to_renewal": delta if delta > 0 else float(np.mod(delta, period)),
        }

    def _billing(
        self, account: str, s: pd.Timestamp, state: dict | None, before: dict | None
    ) -> dict[str, Any]:
        pay = self._rows("billing_events", account)
        in_window = (pay["occurred_at"] <= s) & (pay["occurred_at"] > s - 90 * DAY)
        subs = self._rows("subscriptions", account)
        moves = subs[
            subs["change_type"].isin(["seat_increase", "seat_decrease"])
            & (subs["effective_at"] <= s)
            & (subs["effective_at"] > s - 90 * DAY)
        ]
        both = state is not None and before is not None
        return {
            "failed_payments_90d": int((in_window & (pay["event_type"] == "payment_failed")).sum()),
            "seat_changes_90d": len(moves),
            "mrr_change_90d": state["mrr"] - before["mrr"] if both else None,  # type: ignore[index]
            "seat_change_90d": state["seats"] - before["seats"] if both else None,  # type: ignore[index]
        }

    def _support(self, account: str, s: pd.Timestamp) -> dict[str, Any]:
        t = self._rows("tickets", account)
        closed_at = t["solved_at"].where(
            t["solved_at"].notna(), t["updated_at"].where(t["status"].isin(["solved", "closed"]))
        )
        resolved_at = closed_at.where(
            closed_at.isna() | (closed_at >= t["created_at"]), t["created_at"]
        )
        created = t[t["created_at"] <= s]
        w30 = created[created["created_at"] > s - 30 * DAY]
        w90 = created[created["created_at"] > s - 90 * DAY]
        open_now = (t["created_at"] <= s) & (resolved_at.isna() | (resolved_at > s))
        resolved = t[(resolved_at <= s) & (resolved_at > s - 90 * DAY)]
        hours = resolved["resolution_hours"].dropna()
        nps = self._rows("survey_responses", account)
        nps = nps[nps["submitted_at"] <= s].sort_values(["submitted_at", "response_id"])
        scores = nps["score"].tolist()
        return {
            "tickets_30d": len(w30),
            "tickets_90d": len(w90),
            "open_tickets": int(open_now.sum()),
            "median_resolution_hours_90d": float(hours.median()) if len(hours) else None,
            "high_priority_share_90d": _div(
                int(w90["priority"].isin(["high", "urgent"]).sum()), len(w90)
            ),
            "nps_last": scores[-1] if scores else None,
            "nps_change": scores[-1] - scores[-2] if len(scores) > 1 else None,
        }

    def _sentiment(self, account: str, s: pd.Timestamp) -> dict[str, Any]:
        texts = self._rows("text_sentiment", account)
        w30 = texts[(texts["written_at"] <= s) & (texts["written_at"] > s - 30 * DAY)]
        w90 = texts[(texts["written_at"] <= s) & (texts["written_at"] > s - 90 * DAY)]
        mean_30 = float(w30["score"].mean()) if len(w30) else None
        mean_90 = float(w90["score"].mean()) if len(w90) else None
        negative = w90["label"] == "negative"
        return {
            "sentiment_mean_30d": mean_30,
            "sentiment_mean_90d": mean_90,
            "negative_text_share_90d": _div(int(negative.sum()), len(w90)),
            "sentiment_trend_30v90": None if mean_30 is None else mean_30 - mean_90,
            "detractor_comments_90d": int((negative & (w90["source"] == "survey")).sum()),
            "scored_texts_90d": len(w90),
        }

    def labels(self, account: str, s: pd.Timestamp, horizon_days: int) -> tuple[Any, Any]:
        """(churned, expanded) within the horizon after snapshot ``s``; None when censored."""
        _, churn = self.lifetime(account)
        end = s + horizon_days * DAY
        observed = end <= self.data_end
        churned = churn is not None and s < churn <= end
        subs = self._rows("subscriptions", account)
        expanded = bool(
            (
                subs["change_type"].isin(["seat_increase", "upgrade"])
                & (subs["effective_at"] > s)
                & (subs["effective_at"] <= end)
            ).any()
        )
        churn_label = 1 if churned else (0 if observed else None)
        expand_label = 1 if expanded else (0 if observed or churned else None)
        return churn_label, expand_label


def _div(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    if isinstance(denominator, float) and math.isnan(denominator):
        return None
    return numerator / denominator


def same(expected: Any, actual: Any) -> bool:
    """Equality where None and NaN both mean missing and floats agree to 1e-9."""
    missing_e = expected is None or (isinstance(expected, float) and math.isnan(expected))
    missing_a = (
        actual is None
        or actual is pd.NA
        or (isinstance(actual, float | np.floating) and math.isnan(actual))
    )
    if missing_e or missing_a:
        return missing_e and missing_a
    if isinstance(expected, str) or isinstance(actual, str):
        return expected == actual
    return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
