"""State shared by the CLI's commands: the global options and error handling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import typer
from rich.console import Console

from csa.errors import CsaError
from csa.settings import Settings, load_settings

console = Console(stderr=True)


@dataclass
class _CliState:
    profile: str | None = None
    home: Path | None = None

    def settings(self) -> Settings:
        profile = cast(Literal["local", "production"] | None, self.profile)
        with failures_exit():
            return load_settings(profile=profile, home=self.home)


state = _CliState()


@contextmanager
def failures_exit() -> Iterator[None]:
    """Turn a platform error into a one-line reason on stderr and exit status 1."""
    try:
        yield
    except CsaError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc


def stage(step: int, total: int, name: str, detail: str) -> None:
    """Print one pipeline stage line, e.g. ``[2/3] ingest: 48,210 rows in 2.4 s``."""
    console.print(f"[bold][{step}/{total}][/bold] {name}: {detail}", highlight=False)


def progress_callback() -> tuple[Callable[[str, int, int], None], Any]:
    """A rich progress bar and the callback a library function reports through."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def report(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return report, bar
