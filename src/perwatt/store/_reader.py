"""Reading run directories back, and finding them: the one place that knows what one looks like.

`read_run` parses the manifest into a `Manifest` and checks every table against its schema, so
a run of the wrong shape is one clear error naming the file. `find_runs` turns the paths a user
gives (run directories, folders of them, shell globs that caught other files) into the run
directories they hold, with a note for each path it skipped; every verb that reads runs uses it,
so they all see the same set.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from perwatt.config import RunSpec
from perwatt.errors import PerwattError
from perwatt.files import file_digest
from perwatt.records import Item, RequestRecord
from perwatt.store._files import (
    CHECKPOINT_DIR,
    ITEMS_FILE,
    MANIFEST_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SCORES_FILE,
    SERVER_METRICS_FILE,
    SPEC_FILE,
    SUMMARY_FILE,
    TASKS_FILE,
)
from perwatt.store._manifest import Manifest
from perwatt.store._schema import (
    ITEM_SCHEMA,
    POWER_SCHEMA,
    REQUEST_SCHEMA,
    REQUIRED_REQUEST_COLUMNS,
    SCORE_SCHEMA,
    SERVER_METRICS_SCHEMA,
    TASK_SCHEMA,
    check_requests,
    check_table,
    check_tasks,
    items_from_table,
    records_from_table,
)

RunState = Literal["complete", "interrupted", "unfinished"]


class RunData:
    """A run directory read back from disk: its typed manifest and checked tables.

    The request rows are read from requests.parquet when first asked for, and kept: all of them
    (`requests`, for what shows every column: re-scoring, the HTML samples, `runs sql`) or only
    some columns (`request_columns`, what the metrics kernel reads: a third of the table, most
    of it numbers). Either way they are checked against the contract first, so a table of the
    wrong shape is one clear error naming the file. `read_run` has already checked the file's
    schema and its statuses. A RunData made from tables in memory (`requests` given, no file)
    serves both from that table, which its maker has checked (`check_requests`).
    """

    __slots__ = ("_columns", "_requests", "_tasks", "manifest", "path", "power")

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        requests: pa.Table | None = None,
        power: pa.Table | None = None,
        tasks: pa.Table | None = None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.power = power
        self._requests = requests
        self._tasks = tasks  # tasks.parquet's rows, checked (read on first use)
        self._columns: pa.Table | None = None  # the columns read so far (no full table yet)

    def __repr__(self) -> str:
        return f"RunData({str(self.path)!r}, run_id={self.manifest.run_id!r})"

    @property
    def requests(self) -> pa.Table:
        """Every column of requests.parquet, checked (read on first use, then kept)."""
        if self._requests is None:
            file = self.path / REQUESTS_FILE
            self._requests = check_requests(_read_parquet(file), file)
            self._columns = None  # the whole table serves every projection from now on
        return self._requests

    def request_columns(self, names: Sequence[str], *, keep: bool = True) -> pa.Table:
        """These columns of the request rows, in this order, checked and typed as in
        `requests` (a column the run's file lacks, one added to the contract after it was
        written, reads as null). Each column is read from the file once, then kept; with
        `keep=False` what had to be read is not kept (a caller that converts the columns at
        once: at 10 M rows the kept Arrow copy is a gigabyte of memory touched for nothing)."""
        names = list(names)
        unknown = [name for name in names if name not in REQUEST_SCHEMA.names]
        if unknown:
            raise ValueError(f"no request column {unknown[0]!r}")
        if self._requests is not None:
            return self._requests.select(names)
        have = self._columns
        missing = [n for n in names if have is None or n not in have.column_names]
        if missing:
            read = _read_request_columns(self.path / REQUESTS_FILE, missing, have)
            if have is not None:
                for name in have.column_names:
                    if name not in read.column_names:
                        read = read.append_column(have.field(name), have.column(name))
            if not keep:
                return read.select(names)
            self._columns = have = read
        return have.select(names)

    def tasks(self) -> pa.Table | None:
        """tasks.parquet, checked: one row per task of a multi-turn run (None for a
        single-turn run, which has no tasks file). Read on first use, then kept."""
        if self._tasks is None:
            file = self.path / TASKS_FILE
            if not file.is_file():
                return None
            self._tasks = check_tasks(_read_parquet(file), file)
        return self._tasks

    def answer_rows(self) -> int:
        """How many rows `answer_columns` gives (tasks, else requests), without reading them."""
        tasks = self.tasks()
        if tasks is not None:
            return tasks.num_rows
        held = self._requests if self._requests is not None else self._columns
        if held is not None:
            return held.num_rows
        return _read_row_count(self.path / REQUESTS_FILE)

    def answer_columns(self, names: Sequence[str], *, keep: bool = True) -> pa.Table:
        """These columns of what the metrics kernel counts as answers: a multi-turn run's
        tasks (tasks.parquet; its columns mean for the task what the request columns of the
        same name mean for a request, and those it lacks — inter-token gaps, phases, attempts
        — read as null), else the request rows (`request_columns`)."""
        tasks = self.tasks()
        if tasks is None:
            return self.request_columns(names, keep=keep)
        names = list(names)
        columns = [
            tasks.column(name) if name in TASK_SCHEMA.names
            else pa.nulls(tasks.num_rows, REQUEST_SCHEMA.field(name).type)
            for name in names
        ]  # fmt: skip
        return pa.table(columns, schema=pa.schema([REQUEST_SCHEMA.field(n) for n in names]))

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

    def server_metrics(self) -> pa.Table | None:
        """server_metrics.parquet, checked (None for a run without it: an endpoint without
        /metrics, or a run written before perwatt scraped it)."""
        return _server_metrics(self.path)

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
        """sha256 of requests.parquet's bytes, the file as stored. (A summary's
        `requests_sha256` is another digest: of the rows the kernel reads, whatever file holds
        them; see `analysis.summaries.rows_digest`.)"""
        return file_digest(self.path / REQUESTS_FILE)


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
    power = check_table(
        _read_parquet(run_dir / POWER_FILE), POWER_SCHEMA, run_dir / POWER_FILE,
        ("t", "domain", "energy_j"),
    )  # fmt: skip
    run = RunData(path=run_dir, manifest=manifest, power=power)
    # The contract's checks now, on the file's schema and the two columns they read; the other
    # columns are read (and cast) when first asked for.
    run.request_columns(("status", "correct"))
    return run


def _read_request_columns(
    file: Path, names: Sequence[str], read: pa.Table | None = None
) -> pa.Table:
    """Only `names` of a requests file (with `status` and `correct`, which the contract's
    checks read), checked against the contract; the whole file's schema is checked too.
    `status` and `correct` are taken from `read` (columns of this file read and checked
    before) when it has them, not decoded again."""
    schema = _read_schema(file)
    check_request_schema(schema, file)
    wanted = list(dict.fromkeys([*names, "status", "correct"]))
    kept = [n for n in ("status", "correct") if read is not None and n in read.column_names]
    present = [name for name in wanted if name in schema.names and name not in kept]
    table = _read_parquet(file, present)
    if read is not None:
        for name in kept:
            table = table.append_column(read.field(name), read.column(name))
    return check_requests(table, file, wanted)


def check_request_schema(schema: pa.Schema, path: Path) -> None:
    """A requests file's schema (its footer: no rows read) against the contract: every
    required column there and every column of a type that casts to the contract's. (A column
    whose values do not cast, numbers stored as words, is found when it is read.)"""
    missing = [name for name in REQUIRED_REQUEST_COLUMNS if name not in schema.names]
    if missing:
        raise PerwattError(f"{path}: not a perwatt table (no column {missing[0]!r})")
    for wanted in REQUEST_SCHEMA:
        if wanted.name not in schema.names:
            continue
        found = schema.field(wanted.name).type
        try:
            pa.nulls(0, found).cast(wanted.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise PerwattError(
                f"{path}: column {wanted.name!r} is {found}, expected {wanted.type}"
            ) from None


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


@functools.lru_cache(maxsize=32)
def _server_metrics_cached(path: Path, mtime_ns: int) -> pa.Table:
    file = path / SERVER_METRICS_FILE
    return check_table(_read_parquet(file), SERVER_METRICS_SCHEMA, file, ("t", "requests_running"))


def _server_metrics(run_dir: Path) -> pa.Table | None:
    file = run_dir / SERVER_METRICS_FILE
    if not file.is_file():
        return None
    return _server_metrics_cached(run_dir, file.stat().st_mtime_ns)


def _items(run_dir: Path) -> list[Item] | None:
    file = run_dir / ITEMS_FILE
    if not file.is_file():
        return None
    return list(_items_cached(run_dir, file.stat().st_mtime_ns))


def _read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    # One file, read as one: `pq.read_table` goes through the datasets layer, which decodes in
    # batches and took 3× as long for the same table (10× for a column of 500,000 item ids).
    try:
        with pq.ParquetFile(path) as file:
            return file.read(columns=None if columns is None else list(columns))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise PerwattError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def _read_row_count(path: Path) -> int:
    try:
        with pq.ParquetFile(path) as file:
            return int(file.metadata.num_rows)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise PerwattError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise PerwattError(f"cannot read {path}: {' '.join(str(exc).split())}") from None


def saved_spec(run_dir: Path) -> RunSpec | None:
    """The settings a run was started with: the checkpoint's (a run that has not finished),
    else its manifest's; None when `run_dir` holds neither. Endpoint URLs come back redacted."""
    path = run_dir / CHECKPOINT_DIR / SPEC_FILE
    if path.is_file():
        try:
            return RunSpec.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise PerwattError(f"{path}: not a perwatt checkpoint ({_first_error(exc)})") from None
    if (run_dir / MANIFEST_FILE).is_file():
        return read_manifest(run_dir / MANIFEST_FILE).config
    return None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return str(exc.errors()[0]["msg"])
    return str(exc)


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
