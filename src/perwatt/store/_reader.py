"""Reading run directories back, and finding them: the one place that knows what one looks like.

`read_run` parses the manifest into a `Manifest` and checks every table against its schema, so
a run of the wrong shape is one clear error naming the file. `find_runs` turns the paths a user
gives (run directories, folders of them, shell globs that caught other files) into the run
directories they hold, with a note for each path it skipped; every verb that reads runs uses it,
so they all see the same set.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from perwatt.errors import PerwattError
from perwatt.records import Item, RequestRecord
from perwatt.store._files import (
    CHECKPOINT_DIR,
    ITEMS_FILE,
    MANIFEST_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SCORES_FILE,
    SUMMARY_FILE,
)
from perwatt.store._manifest import Manifest
from perwatt.store._schema import (
    ITEM_SCHEMA,
    POWER_SCHEMA,
    SCORE_SCHEMA,
    check_requests,
    check_table,
    items_from_table,
    records_from_table,
)

RunState = Literal["complete", "interrupted", "unfinished"]


@dataclass(frozen=True)
class RunData:
    """A run directory read back from disk: its typed manifest and checked tables."""

    path: Path
    manifest: Manifest
    requests: pa.Table
    power: pa.Table

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def model(self) -> str:
        return self.manifest.model.name

    def records(self) -> list[RequestRecord]:
        return records_from_table(self.requests)

    def items(self) -> list[Item] | None:
        """The run's items with the prompts they were sent (None for a run without
        items.parquet: one written before perwatt stored them)."""
        return _items(self.path)

    def summary_json(self) -> dict[str, Any] | None:
        """summary.json as written (None when missing or unreadable); the analysis layer checks
        whether it still describes the rows on disk."""
        path = self.path / SUMMARY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def requests_digest(self) -> str:
        """sha256 of requests.parquet: what a summary was computed from."""
        return file_digest(self.path / REQUESTS_FILE)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    """The manifest at `path`, typed; a clear error for one of the wrong shape."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PerwattError(f"cannot read {path}: {exc}") from None
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the top level"
        raise PerwattError(
            f"{path}: not a perwatt manifest ({where}: {first.get('msg', 'invalid')})"
        ) from None


def read_run(run_dir: Path) -> RunData:
    """Read a finished (or interrupted) run directory; a clear error if it is not one."""
    manifest_path = run_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise PerwattError(f"{run_dir} is not a perwatt run directory (no {MANIFEST_FILE})")
    manifest = read_manifest(manifest_path)
    requests = check_requests(_read_parquet(run_dir / REQUESTS_FILE), run_dir / REQUESTS_FILE)
    power = check_table(
        _read_parquet(run_dir / POWER_FILE), POWER_SCHEMA, run_dir / POWER_FILE,
        ("t", "domain", "energy_j"),
    )  # fmt: skip
    return RunData(path=run_dir, manifest=manifest, requests=requests, power=power)


def read_scores(run_dir: Path) -> pa.Table | None:
    """scores.parquet (how the rows were last re-scored), if the run was re-scored."""
    path = run_dir / SCORES_FILE
    if not path.is_file():
        return None
    return check_table(_read_parquet(path), SCORE_SCHEMA, path, ("request_id", "scorer"))


@functools.lru_cache(maxsize=32)
def _items_cached(path: Path, mtime_ns: int) -> tuple[Item, ...]:
    file = path / ITEMS_FILE
    table = check_table(_read_parquet(file), ITEM_SCHEMA, file, ("item_id", "reference"))
    try:
        return tuple(items_from_table(table))
    except (ValueError, TypeError) as exc:
        raise PerwattError(f"{file}: malformed item ({exc})") from None


def _items(run_dir: Path) -> list[Item] | None:
    file = run_dir / ITEMS_FILE
    if not file.is_file():
        return None
    return list(_items_cached(run_dir, file.stat().st_mtime_ns))


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise PerwattError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def run_state(path: Path) -> RunState | None:
    """`complete` or `interrupted` (a manifest says which), `unfinished` (a checkpoint without a
    manifest: a run that is going, or crashed before finalizing), None (not a run directory)."""
    manifest = path / MANIFEST_FILE
    if manifest.is_file():
        try:
            status = json.loads(manifest.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError, AttributeError):
            status = None
        # The manifest is written last, so "complete" means the other files are whole.
        return "complete" if status == "complete" else "interrupted"
    if (path / CHECKPOINT_DIR).is_dir():
        return "unfinished"
    return None


@dataclass(frozen=True)
class FoundRuns:
    """The run directories some paths hold, and what was skipped on the way (one note each)."""

    runs: list[Path]
    unfinished: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_runs(paths: Sequence[Path], *, default: Path | None = None) -> FoundRuns:
    """Every run directory that `paths` name: each a run directory or a folder holding some
    (searched at any depth, hidden folders skipped). Files and folders that are not runs are
    skipped with a note (a shell glob such as `runs/*` also catches `runs/report.html`); an
    unfinished run (no manifest yet) is listed apart. A path that does not exist, or nothing at
    all found, is an error: a typo must never silently shrink a study."""
    if not paths:
        paths = [default] if default is not None else []
    runs: list[Path] = []
    unfinished: list[Path] = []
    notes: list[str] = []
    for path in paths:
        if not path.exists():
            raise PerwattError(f"{path} does not exist")
        state = run_state(path)
        if state in ("complete", "interrupted"):
            runs.append(path)
            continue
        if state == "unfinished":
            unfinished.append(path)
            continue
        if not path.is_dir():
            notes.append(f"skipped {path}: not a run directory")
            continue
        found = False
        for candidate in sorted(_folders(path)):
            inner = run_state(candidate)
            if inner in ("complete", "interrupted"):
                runs.append(candidate)
                found = True
            elif inner == "unfinished":
                unfinished.append(candidate)
                found = True
        if not found:
            notes.append(f"skipped {path}: no run directory in it")
    runs = _unique(runs)
    unfinished = _unique(unfinished)
    for path in unfinished:
        notes.append(f"{path} is unfinished (no manifest yet: running, or crashed; --resume it)")
    if not runs:
        where = ", ".join(str(p) for p in paths) or "nowhere"
        raise PerwattError(f"no finished perwatt run directory in {where}")
    return FoundRuns(runs, unfinished, notes)


def _folders(root: Path) -> list[Path]:
    """Every folder below `root` whose path has no hidden part (`.partial`, `.git`, ...)."""
    out = []
    for folder in root.rglob("*"):
        if folder.is_dir() and not any(p.startswith(".") for p in folder.relative_to(root).parts):
            out.append(folder)
    return out


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
