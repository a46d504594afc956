"""The service instance ``bentoml serve csa.serving.app:CustomerSuccess`` imports.

Settings are read here, at import, because this module is the server's entry point: the home
and profile come from ``CSA_HOME`` / ``CSA_PROFILE``, which ``csa serve`` sets for it.
"""

from csa.serving.service import build_service
from csa.settings import load_settings

CustomerSuccess = build_service(load_settings())
