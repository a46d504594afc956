"""The scoring service: BentoML routes, API keys and roles, and live champion models.

Public surface: ``build_service`` (the service class for a home), ``KeyStore`` (API keys),
``ChampionScorer`` (scores with the registry's champions, following promotions).
"""

from csa.serving.access import KeyStore
from csa.serving.scoring import ChampionScorer
from csa.serving.service import build_service

__all__ = ["ChampionScorer", "KeyStore", "build_service"]
