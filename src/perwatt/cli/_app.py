"""The Typer app, the consoles every verb prints with, and the few printing helpers they share.

User text (paths, model names, error messages) is printed as plain text, never as Rich markup,
so that brackets in it reach the user as typed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Correct answers per joule: accuracy, energy and latency of language models in one run.",
)
# Piped output (CI logs, files) gets room for the full tables; a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

JsonOption = Annotated[
    Path | None, typer.Option("--json", help="Also write the result as JSON to this file.")
]


def say(text: str, style: str = "", *, to_stderr: bool = False) -> None:
    """Print one line of plain text (no markup is read in it)."""
    (err_console if to_stderr else console).print(Text(text, style=style), soft_wrap=True)


def write_json_out(path: Path | None, obj: Any) -> None:
    """Write the result atomically when --json was given, and say where."""
    if path is None:
        return
    from perwatt.errors import PerwattError
    from perwatt.files import write_json

    try:
        write_json(path, obj)
    except OSError as exc:
        raise PerwattError(f"cannot write {path}: {exc.strerror or exc}") from None
    say(f"wrote {path}", "dim")


def load_runs(paths: list[Path]) -> list[Any]:
    """The finished runs (RunData) under `paths` — `store.find_runs`, default ./runs — with a
    note for whatever it skipped."""
    from perwatt.store import find_runs, read_run

    found = find_runs(paths, default=Path("runs"))
    for note in found.notes:
        say(f"note: {note}", "dim")
    return [read_run(d) for d in found.runs]


def print_sweep(
    run_dirs: list[Path],
    json_path: Path,
    *,
    labels: list[str] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> None:
    """The sweep table of these runs (one row per run, `labels` naming each row's load) and the
    same rows, with `extra` fields, as JSON: the energy-versus-load curve."""
    from perwatt.analysis.summaries import summaries_of
    from perwatt.files import to_jsonable, write_json
    from perwatt.report.terminal import energy_notes, sweep_table
    from perwatt.store import read_run

    summaries = summaries_of([read_run(d) for d in run_dirs])
    console.print(sweep_table(summaries, labels))
    for note in energy_notes(summaries):
        say(f"energy: {note}", "dim")
    rows = [
        {"run_dir": str(d)} | (extra[k] if extra else {}) | to_jsonable(s)
        for k, (d, s) in enumerate(zip(run_dirs, summaries, strict=True))
    ]
    write_json(json_path, rows)
    say(f"sweep table written to {json_path}", "dim")
