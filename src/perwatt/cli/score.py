"""`perwatt score`: score recorded responses again, without calling the model.

Two forms:

- `perwatt score RUN_DIR [--scorer NAME] [--out PATH | --in-place]` re-scores a run directory's
  requests. By default it writes a new run directory beside the old one (`RUN_DIR-<scorer>`:
  the rows re-scored, the energy timeline copied, the summary recomputed, `scores.parquet` with
  how each row was scored); `--out DIR` names it, `--out FILE.parquet|.jsonl|.csv` writes the
  scored table alone, and `--in-place` updates the run itself. The items are rebuilt from the
  run's manifest (workload, seed, limit, data file; `--data-file` points elsewhere).
- `perwatt score --workload gsm8k --outputs FILE [--mapping ...]` scores a file of outputs, and
  when the file carries correctness labels, prints how often perwatt agrees with them.

Judge-scored rows (`--scorer judge|judge-pairwise`, or a judge-scored workload) need a judge:
`--judge-model NAME` alone serves a packaged model; `--judge-endpoint URL --judge-model NAME`
asks any OpenAI-compatible endpoint (its API key from PERWATT_API_KEY or OPENAI_API_KEY).
Verdicts are cached on disk, so scoring the same rows again asks the judge nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from perwatt.cli._app import app, console, say, workload_choices
from perwatt.errors import PerwattError

TABLE_SUFFIXES = (".parquet", ".jsonl", ".csv")


@dataclasses.dataclass(frozen=True)
class JudgeOptions:
    """The judge options as given on the command line."""

    model: str | None
    endpoint: str | None
    api: str
    max_tokens: int
    concurrency: int
    timeout_s: float
    cache_dir: Path | None


@app.command()
def score(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run directory to re-score (or use --outputs).")
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(
            help="numeric, choice, math, exact, reasoning-gym, judge or judge-pairwise "
            "(default: each workload's own)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="New run directory, or a table file (.parquet, .jsonl, .csv)."),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Update the run directory itself.")
    ] = False,
    workload: Annotated[
        str | None,
        typer.Option(
            help=f"With --outputs: the workload the outputs answer, one of {workload_choices()}."
        ),
    ] = None,
    outputs: Annotated[
        Path | None, typer.Option(help="A file of outputs (JSONL, JSON, CSV, Parquet) to score.")
    ] = None,
    mapping: Annotated[
        str,
        typer.Option(
            help="With --outputs: where fields are, e.g. "
            "'reference=ground_truth,response=*.solution,label=*.is_correct'."
        ),
    ] = "",
    judge_model: Annotated[
        str | None, typer.Option(help="Judge: a packaged model, or the model at --judge-endpoint.")
    ] = None,
    judge_endpoint: Annotated[
        str | None, typer.Option(help="Judge: an OpenAI-compatible /v1 base URL.")
    ] = None,
    judge_api: Annotated[str, typer.Option(help="Judge endpoint API: chat or completions.")] = (
        "chat"
    ),
    judge_max_tokens: Annotated[int, typer.Option(help="Judge: tokens per verdict.")] = 32,
    judge_concurrency: Annotated[int, typer.Option(help="Judge: requests in flight.")] = 4,
    judge_timeout: Annotated[float, typer.Option(help="Judge: seconds per request.")] = 120.0,
    judge_cache: Annotated[
        Path | None, typer.Option(help="Judge verdict cache (default ~/.cache/perwatt/judge).")
    ] = None,
) -> None:
    """Score recorded responses again, with another scorer, without calling the model."""
    from perwatt.scoring import get_scorer

    if scorer is not None:
        get_scorer(scorer)
    judge = JudgeOptions(
        judge_model, judge_endpoint, judge_api, judge_max_tokens, judge_concurrency,
        judge_timeout, judge_cache,
    )  # fmt: skip
    _check_judge_options(judge)
    if outputs is not None:
        if run_dir is not None or in_place:
            raise PerwattError("--outputs scores a file: give no RUN_DIR or --in-place")
        if workload is None:
            raise PerwattError("--outputs needs --workload NAME (the workload the outputs answer)")
        _score_outputs(outputs, workload, mapping, scorer, out, judge)
        return
    if run_dir is None:
        raise PerwattError("give a RUN_DIR to re-score, or --workload NAME --outputs FILE")
    if workload is not None or mapping:
        raise PerwattError("--workload and --mapping go with --outputs; a run names its workload")
    if in_place and out is not None:
        raise PerwattError("--in-place and --out exclude each other")
    _score_run(run_dir, scorer, out, in_place, judge)


# --- a run directory ----------------------------------------------------------------------------


def _score_run(
    run_dir: Path,
    scorer: str | None,
    out: Path | None,
    in_place: bool,
    judge: JudgeOptions,
) -> None:
    from perwatt.analysis.summaries import compute_summaries
    from perwatt.cli.report import print_report
    from perwatt.scoring.rescore import rescore_records
    from perwatt.store import (
        RunData,
        ScoringEntry,
        check_requests,
        read_run,
        records_table,
        scores_table,
        write_rescored,
    )

    run = read_run(run_dir)
    tag = scorer or "rescored"
    target = None if in_place else (out or run_dir.with_name(f"{run_dir.name}-{tag}"))
    if target is not None:
        _check_target(target)
    records = run.records()
    items = _items_for(run, records, scorer)
    with _judge_settings(judge) as settings:
        result = rescore_records(records, items, scorer=scorer, judge=settings)
    before = sum(bool(r.correct) for r in records)
    after = sum(bool(r.correct) for r in result.records)
    changed = sum(a.correct != b.correct for a, b in zip(records, result.records, strict=True))
    unscored = sum(r.correct is None for r in result.records)
    entry = ScoringEntry(
        scorer=scorer or "each item's own",
        scored_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source_run_id=run.run_id,
        source_path=str(run_dir),
        rows=len(records),
        correct_before=before,
        correct_after=after,
        changed=changed,
        unscored=unscored,
        judge=_judge_record(result.details, result.judge, judge),
    )
    details = scores_table(result.details)
    rescored = result.records
    if target is not None and target.suffix.lower() in TABLE_SUFFIXES:
        _write_scored_table(target, records_table(rescored), details)
        written = target
    else:
        update: dict[str, Any] = {"scoring": [*run.manifest.scoring, entry]}
        if target is not None:
            update["run_id"] = f"{run.run_id}.{tag}"
            rescored = [dataclasses.replace(r, run_id=update["run_id"]) for r in rescored]
        manifest = run.manifest.model_copy(update=update)
        destination = run_dir if target is None else target
        table = check_requests(records_table(rescored), destination)
        (summary,) = compute_summaries([RunData(destination, manifest, table, run.power)])
        written = write_rescored(run_dir, target, rescored, details, manifest, summary)
    say(f"re-scored {len(records)} rows with {entry.scorer}: {before} → {after} correct "
        f"({changed} changed, {unscored} unscored); written to {written}")  # fmt: skip
    if result.judge is not None:
        stats = result.judge
        say(f"judge: {stats.requests} requests, {stats.cache_hits} verdicts from the cache, "
            f"{stats.failures} failed")  # fmt: skip
    if written.is_dir():
        print_report([read_run(written)])


def _check_target(target: Path) -> None:
    if target.suffix.lower() in TABLE_SUFFIXES:
        if target.exists():
            raise PerwattError(f"{target} already exists; choose another --out")
        return
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PerwattError(f"{target} already exists; choose another --out")


def _items_for(run: Any, records: Sequence[Any], scorer: str | None) -> dict[str, Any]:
    """The items the run answered, from its items.parquet (the exact questions and references
    it was run with). A run written before perwatt kept items.parquet can still be re-scored by
    a scorer that needs only the references in its rows."""
    from perwatt.records import Item
    from perwatt.scoring.rescore import needs_questions
    from perwatt.workloads import split_name

    stored = run.items()
    if stored is not None:
        items = {i.item_id: i for i in stored}
        missing = [r.item_id for r in records if r.item_id not in items]
        if missing:
            raise PerwattError(f"{run.path}: item '{missing[0]}' of its rows is not in its "
                               "items.parquet")  # fmt: skip
        return items
    try:
        default = split_name(run.manifest.workload)[0].scorer
    except PerwattError:
        default = ""
    fallback = {
        r.item_id: Item(r.item_id, r.workload, r.task, r.domain, "", r.reference, scorer=default)
        for r in records
    }
    if needs_questions(scorer, list(fallback.values())):
        raise PerwattError(
            f"{run.path} has no items.parquet (it was written by an older perwatt), and this "
            "scorer needs the questions; pass --scorer numeric, exact or math"
        )
    say("this run has no items.parquet: scoring against the references in its rows", "dim")
    return fallback


# --- a file of outputs ---------------------------------------------------------------------------


def _score_outputs(
    path: Path, workload: str, mapping: str, scorer: str | None, out: Path | None, judge: Any
) -> None:
    from perwatt.report.terminal import agreement_table
    from perwatt.scoring.rescore import score_outputs
    from perwatt.workloads import split_name
    from perwatt.workloads.outputs import read_outputs

    info, _ = split_name(workload)
    name = scorer or info.scorer
    if not name:
        raise PerwattError(f"the {info.name} workload has no default scorer: pass --scorer NAME")
    if out is not None:
        if out.suffix.lower() not in TABLE_SUFFIXES:
            raise PerwattError(f"--out for --outputs is a table file ({', '.join(TABLE_SUFFIXES)})")
        _check_target(out)
    rows, used = read_outputs(path, mapping)
    with _judge_settings(judge) as settings:
        scored, stats = score_outputs(rows, info.name, scorer=name, judge=settings)
    say(
        f"{len(scored)} responses in {path} scored with {name} (reference={used.reference}, "
        f"response={used.response}" + (f", label={used.label}" if used.label else "") + ")"
    )
    console.print(agreement_table(scored))
    labelled = [s for s in scored if s.row.label is not None and s.detail.correct is not None]
    if labelled:
        agree = sum(s.row.label == s.detail.correct for s in labelled)
        say(f"agreement with the file's labels: {agree:,} / {len(labelled):,} "
            f"({100 * agree / len(labelled):.2f}%)")  # fmt: skip
    if stats is not None:
        say(f"judge: {stats.requests} requests, {stats.cache_hits} verdicts from the cache, "
            f"{stats.failures} failed")  # fmt: skip
    if out is not None:
        _write_outputs_table(out, scored)
        say(f"scored table written to {out}")


def _write_outputs_table(path: Path, scored: Sequence[Any]) -> None:
    import pyarrow as pa

    from perwatt.store import SCORE_SCHEMA

    rows = []
    for s in scored:
        detail = dataclasses.asdict(s.detail)
        detail.pop("request_id")
        rows.append(
            {
                "line": s.row.line,
                "model": s.row.model,
                "question": s.row.question,
                "reference": s.row.reference,
                "response": s.row.response,
                "label": s.row.label,
                **detail,
            }
        )
    schema = pa.schema(
        [
            ("line", pa.string()),
            ("model", pa.string()),
            ("question", pa.string()),
            ("reference", pa.string()),
            ("response", pa.string()),
            ("label", pa.bool_()),
            *(f for f in SCORE_SCHEMA if f.name != "request_id"),
        ]
    )
    _write_any(path, pa.Table.from_pylist(rows, schema=schema))


def _write_scored_table(path: Path, requests: Any, details: Any) -> None:
    """The run's rows with how each was scored, as one table."""
    extra = [n for n in details.column_names if n not in requests.column_names]
    table = requests
    for name in extra:
        table = table.append_column(details.schema.field(name), details.column(name))
    _write_any(path, table)


def _write_any(path: Path, table: Any) -> None:
    """Write a table as Parquet, JSONL or CSV, atomically."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from perwatt.files import atomic_write

    suffix = path.suffix.lower()

    def write(tmp: Path) -> None:
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        elif suffix == ".csv":
            pacsv.write_csv(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as handle:
                for row in table.to_pylist():
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    atomic_write(path, write)


# --- the judge -----------------------------------------------------------------------------------


def _check_judge_options(judge: JudgeOptions) -> None:
    if judge.endpoint is not None and judge.model is None:
        raise PerwattError("--judge-endpoint needs --judge-model NAME (the model it serves)")
    if judge.api not in ("chat", "completions"):
        raise PerwattError(f"--judge-api must be chat or completions, not {judge.api!r}")
    if judge.max_tokens < 1 or judge.concurrency < 1 or judge.timeout_s <= 0:
        raise PerwattError("--judge-max-tokens, --judge-concurrency and --judge-timeout: > 0")


@contextlib.contextmanager
def _judge_settings(judge: JudgeOptions) -> Iterator[Any]:
    """The judge's settings (None without a judge); a packaged judge is served meanwhile."""
    from perwatt.scoring.judge import JudgeSettings, managed_judge

    if judge.model is None:
        yield None
        return
    base = JudgeSettings(
        endpoint=judge.endpoint or "",
        model=judge.model,
        api="chat" if judge.api == "chat" else "completions",
        max_tokens=judge.max_tokens,
        timeout_s=judge.timeout_s,
        concurrency=judge.concurrency,
        cache_dir=judge.cache_dir,
    )
    if judge.endpoint is not None:
        yield base
        return
    with managed_judge(judge.model, base) as settings:
        yield settings


def _judge_record(details: Sequence[Any], stats: Any, judge: JudgeOptions) -> dict[str, Any] | None:
    """What the manifest keeps about the judge: never a key, the endpoint redacted."""
    from perwatt.redact import redact_url

    judged = [d for d in details if d.judge_model]
    if not judged:
        return None
    return {
        "model": judged[0].judge_model,
        "endpoint": redact_url(judge.endpoint) if judge.endpoint else "packaged (managed)",
        "templates": sorted({d.judge_template for d in judged}),
        "max_tokens": judge.max_tokens,
        "requests": stats.requests if stats else 0,
        "cache_hits": stats.cache_hits if stats else 0,
        "failures": stats.failures if stats else 0,
    }
