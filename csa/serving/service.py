"""The BentoML service: churn and expansion scores by account id, behind keys and roles.

``build_service(settings)`` makes the service class for one home: routes ``/churn`` and
``/expansion`` (``{"account_ids": [...]}``), ``/sentiment`` (``{"texts": [...]}``, batched
across concurrent callers by ``TextBatcher``), ``/account``, ``/events``, ``/livez``,
``/readyz`` (false until a churn or expansion champion is loaded and while the online store does
not answer) and ``/metrics`` from BentoML. A background thread polls the registry every
``serving.reload_seconds`` and swaps in a newly promoted champion; every answer names the
version that made it. ``csa.serving.app`` holds the instance ``bentoml serve`` imports.

A handler's platform error becomes the HTTP status its class names. BentoML replaces the body of
any 5xx with a generic message (and wraps a 4xx reason in a list), so the handler also leaves the
reason in the request's state, where ``AccessMiddleware`` answers it as ``{"error": reason}``: a
503 always says which store or model is missing.
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from typing import Annotated, Any

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import Field

from csa.errors import CsaError
from csa.serving.access import AccessMiddleware, KeyStore
from csa.serving.batching import TextBatcher
from csa.serving.customer_view import CustomerView
from csa.serving.intake import EventIntake
from csa.serving.scoring import ChampionScorer
from csa.serving.sentiment import SentimentScorer
from csa.settings import Settings

logger = logging.getLogger(__name__)

AccountIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    Field(min_length=1, max_length=1000, description="CRM ids of the accounts to score."),
]


def _http_error(exc: CsaError, ctx: bentoml.Context) -> BentoMLException:
    """A platform error as the BentoML exception that answers with its HTTP status.

    The reason is also left in the request's state, for the middleware to answer with.
    """
    ctx.request.state.csa_reason = str(exc)
    return BentoMLException(str(exc), error_code=HTTPStatus(exc.http_status))


def sentiment_texts(settings: Settings) -> Any:
    """The type of a ``/sentiment`` body's ``texts``: the caps are settings, checked per request."""
    serving = settings.serving
    return Annotated[
        list[Annotated[str, Field(min_length=1, max_length=serving.sentiment_max_chars)]],
        Field(
            min_length=1,
            max_length=serving.sentiment_max_texts,
            description=(
                f"Texts to label, 1 to {serving.sentiment_max_texts} per request, each 1 to "
                f"{serving.sentiment_max_chars} characters."
            ),
        ),
    ]


def build_service(settings: Settings) -> Any:
    """The service class for ``settings`` (decorated, ready for ``bentoml serve``)."""
    serving = settings.serving
    keys = KeyStore(settings)

    @bentoml.service(
        name="csa",
        # Concurrency is limited by AccessMiddleware, which answers 503 with Retry-After.
        traffic={"timeout": serving.timeout_seconds},
        workers=1,
        # BentoML hands synchronous routes one request at a time unless given threads; the
        # stores' clients are thread-safe, and concurrent /events requests commit together.
        threads=serving.threads,
    )
    class CustomerSuccess:
        """Churn and expansion scores with drivers, for applications and people."""

        def __init__(self) -> None:
            self.scorer = ChampionScorer(settings)
            self.sentiment_scorer = SentimentScorer(settings)
            self.batcher = TextBatcher(
                self.sentiment_scorer.score,
                max_batch_size=serving.sentiment_max_batch_size,
                max_wait_ms=serving.sentiment_max_wait_ms,
            )
            self.keys = keys
            self.view = CustomerView(settings, self.scorer)
            self.intake = EventIntake(settings)
            self._stop = threading.Event()
            self._follow()
            self._follower = threading.Thread(
                target=self._follow_loop, name="registry-follower", daemon=True
            )
            self._follower.start()

        def _follow(self) -> None:
            for scorer in (self.scorer, self.sentiment_scorer):
                try:
                    scorer.refresh()
                except Exception as exc:  # the registry may be briefly unreachable
                    logger.warning("registry check failed, keeping the current models: %s", exc)

        @bentoml.on_shutdown
        def _stop_following(self) -> None:
            self._stop.set()

        def _follow_loop(self) -> None:
            while not self._stop.wait(serving.reload_seconds):
                self._follow()

        def __is_ready__(self) -> bool:
            if self.scorer.version("churn") is None and self.scorer.version("expansion") is None:
                return False
            try:
                self.scorer.reader.read("churn", ["__readiness__"])
            except CsaError:
                return False
            return True

        @bentoml.api(route="/churn")
        def churn(self, account_ids: AccountIds, ctx: bentoml.Context) -> list[dict[str, Any]]:
            """Probability of churn within the horizon, band, drivers and model version."""
            return self._score("churn", account_ids, ctx)

        @bentoml.api(route="/expansion")
        def expansion(self, account_ids: AccountIds, ctx: bentoml.Context) -> list[dict[str, Any]]:
            """Probability of expansion within the horizon, band, drivers and model version."""
            return self._score("expansion", account_ids, ctx)

        async def sentiment(self, texts: list[str], ctx: bentoml.Context) -> list[dict[str, Any]]:
            """Per text: label (positive, neutral or negative), score and model version.

            Texts of concurrent requests are scored together; each caller gets its own.
            """
            try:
                return await self.batcher.submit(texts)
            except CsaError as exc:
                raise _http_error(exc, ctx) from exc

        # The caps come from settings, so the annotation is set here rather than written above.
        sentiment.__annotations__["texts"] = sentiment_texts(settings)
        sentiment = bentoml.api(route="/sentiment")(sentiment)

        @bentoml.api(route="/account")
        def account(
            self,
            account_id: Annotated[str, Field(min_length=1, max_length=128)],
            ctx: bentoml.Context,
        ) -> dict[str, Any]:
            """The customer view: profile, usage, scores, tickets, comments, playbook actions."""
            state = ctx.request.state
            role = self.keys.role(state.csa_role)
            try:
                return self.view.view(account_id, role, state.csa_key_id)
            except CsaError as exc:
                raise _http_error(exc, ctx) from exc

        @bentoml.api(route="/events")
        def events(
            self,
            events: Annotated[
                # Any items: a malformed event is rejected on its own, with its reason.
                list[Any],
                Field(min_length=1, max_length=10_000, description="Track calls to record."),
            ],
            ctx: bentoml.Context,
        ) -> dict[str, Any]:
            """Usage events: accepted once durably logged, duplicates counted, rejects explained."""
            try:
                return self.intake.accept(events).as_dict()
            except CsaError as exc:
                raise _http_error(exc, ctx) from exc

        def _score(
            self, model: str, account_ids: list[str], ctx: bentoml.Context
        ) -> list[dict[str, Any]]:
            try:
                return self.scorer.score(model, account_ids)
            except CsaError as exc:
                raise _http_error(exc, ctx) from exc

    # The decorator returns BentoML's Service wrapper, whose type the class statement hides.
    service: Any = CustomerSuccess
    service.add_asgi_middleware(AccessMiddleware, settings=settings, keys=keys)
    return service
