"""The BentoML service: churn and expansion scores by account id, behind keys and roles.

``build_service(settings)`` makes the service class for one home: routes ``/churn`` and
``/expansion`` (``{"account_ids": [...]}``), ``/livez``, ``/readyz`` (false until a champion is
loaded and while the online store does not answer) and ``/metrics`` from BentoML. A background
thread polls the registry every ``serving.reload_seconds`` and swaps in a newly promoted
champion; every answer names the version that made it. ``csa.serving.app`` holds the instance
``bentoml serve`` imports.
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
from csa.serving.customer_view import CustomerView
from csa.serving.intake import EventIntake
from csa.serving.scoring import ChampionScorer
from csa.settings import Settings

logger = logging.getLogger(__name__)

AccountIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    Field(min_length=1, max_length=1000, description="CRM ids of the accounts to score."),
]


def _http_error(exc: CsaError) -> BentoMLException:
    """A platform error as the BentoML exception that answers with its HTTP status."""
    return BentoMLException(str(exc), error_code=HTTPStatus(exc.http_status))


def build_service(settings: Settings) -> Any:
    """The service class for ``settings`` (decorated, ready for ``bentoml serve``)."""
    serving = settings.serving
    keys = KeyStore(settings)

    @bentoml.service(
        name="csa",
        # Concurrency is limited by AccessMiddleware, which answers 503 with Retry-After.
        traffic={"timeout": serving.timeout_seconds},
        workers=1,
    )
    class CustomerSuccess:
        """Churn and expansion scores with drivers, for applications and people."""

        def __init__(self) -> None:
            self.scorer = ChampionScorer(settings)
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
            try:
                self.scorer.refresh()
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
        def churn(self, account_ids: AccountIds) -> list[dict[str, Any]]:
            """Probability of churn within the horizon, band, drivers and model version."""
            return self._score("churn", account_ids)

        @bentoml.api(route="/expansion")
        def expansion(self, account_ids: AccountIds) -> list[dict[str, Any]]:
            """Probability of expansion within the horizon, band, drivers and model version."""
            return self._score("expansion", account_ids)

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
                raise _http_error(exc) from exc

        @bentoml.api(route="/events")
        def events(
            self,
            events: Annotated[
                # Any items: a malformed event is rejected on its own, with its reason.
                list[Any],
                Field(min_length=1, max_length=10_000, description="Track calls to record."),
            ],
        ) -> dict[str, Any]:
            """Usage events: accepted once durably logged, duplicates counted, rejects explained."""
            try:
                return self.intake.accept(events).as_dict()
            except CsaError as exc:
                raise _http_error(exc) from exc

        def _score(self, model: str, account_ids: list[str]) -> list[dict[str, Any]]:
            try:
                return self.scorer.score(model, account_ids)
            except CsaError as exc:
                raise _http_error(exc) from exc

    # The decorator returns BentoML's Service wrapper, whose type the class statement hides.
    service: Any = CustomerSuccess
    service.add_asgi_middleware(AccessMiddleware, settings=settings, keys=keys)
    return service
