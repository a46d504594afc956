"""``csa serve`` and ``csa keys create``."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from csa.cli.context import console, failures_exit, state

keys_app = typer.Typer(name="keys", help="API keys of the scoring service.", no_args_is_help=True)


@keys_app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="admin, ml_engineer, csm or app (configs/roles.yaml).")],
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from csa.serving.access import KeyStore

    settings = state.settings()
    with failures_exit():
        key, key_id = KeyStore(settings).create(role, name)
    console.print(f"key {key_id} for role {role} (shown once, store it now):", highlight=False)
    typer.echo(key)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [serving.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [serving.port].")] = None,
) -> None:
    """Serve churn and expansion scores over HTTP (BentoML) until interrupted."""
    settings = state.settings()
    bind_host = host or settings.serving.host
    bind_port = port or settings.serving.port
    if bind_host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]warning:[/yellow] binding {bind_host} exposes the service beyond this "
            "machine; every route but health and metrics still needs a key.",
            highlight=False,
        )
    environment = {
        **os.environ,
        "CSA_HOME": str(settings.home),
        "CSA_PROFILE": settings.profile,
        "BENTOML_DO_NOT_TRACK": "true",
        # Third-party deprecation notices are not the operator's to act on.
        "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "ignore::DeprecationWarning"),
    }
    command = [
        sys.executable, "-m", "bentoml", "serve", "csa.serving.app:CustomerSuccess",
        "--host", bind_host, "--port", str(bind_port),
    ]  # fmt: skip
    console.print(f"serving on http://{bind_host}:{bind_port} (Ctrl-C stops)", highlight=False)
    try:
        code = subprocess.call(command, env=environment)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add ``csa serve`` and ``csa keys`` to the app."""
    app.add_typer(keys_app, name="keys")
    app.command()(serve)
