"""Per-run summaries of run directories: summary.json when it still describes the rows on disk,
else the kernel, once, for all the runs that need it.

A summary.json records the kernel version and a digest of the request rows it was computed
from; a re-score, an edited table or a newer kernel makes it stale, and it is computed again
(with the run's own seed and resample count, so the same rows always give the same figures).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from perwatt.analysis._columns import RequestColumns
from perwatt.analysis.metrics import KERNEL_VERSION, RunContext, RunSummary, Slo, summarize
from perwatt.store import RunData

_SUMMARY = TypeAdapter(RunSummary)


def run_context(run: RunData) -> RunContext:
    """The kernel's view of a run's manifest."""
    m = run.manifest
    return RunContext(
        run_id=m.run_id,
        model=m.model.name,
        workload=m.workload,
        energy=m.energy.totals,
        concurrency=m.concurrency,
        load=m.load.label,
        slo=Slo(ttft_s=m.load.slo.ttft_s, e2e_s=m.load.slo.e2e_s),
    )


def rows_digest(requests: pa.Table) -> str:
    """A digest of a (checked) requests table's content, independent of how it is chunked."""
    sink = pa.BufferOutputStream()
    table = requests.combine_chunks().replace_schema_metadata(None)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def compute_summaries(runs: Sequence[RunData]) -> list[RunSummary]:
    """Each run's summary from its rows, by the kernel; runs with the same seed and resample
    count share one paired bootstrap (the same items get the same weights either way)."""
    out: dict[int, RunSummary] = {}
    groups: dict[tuple[int, int], list[int]] = {}
    for k, run in enumerate(runs):
        key = (run.manifest.seed, run.manifest.config.bootstrap_resamples)
        groups.setdefault(key, []).append(k)
    for (seed, resamples), members in groups.items():
        chosen = [runs[k] for k in members]
        cols = RequestColumns.from_tables([r.requests for r in chosen], [r.run_id for r in chosen])
        summaries, _ = summarize(
            cols, [run_context(r) for r in chosen], resamples=resamples, seed=seed
        )
        for k, run, summary in zip(members, chosen, summaries, strict=True):
            out[k] = _with_digest(summary, rows_digest(run.requests))
    return [out[k] for k in range(len(runs))]


def summaries_of(runs: Sequence[RunData]) -> list[RunSummary]:
    """Each run's summary: its summary.json where that is current, else computed."""
    found: dict[int, RunSummary] = {}
    stale: list[int] = []
    for k, run in enumerate(runs):
        stored = _stored(run)
        if stored is None:
            stale.append(k)
        else:
            found[k] = stored
    if stale:
        for k, summary in zip(stale, compute_summaries([runs[k] for k in stale]), strict=True):
            found[k] = summary
    return [found[k] for k in range(len(runs))]


def _stored(run: RunData) -> RunSummary | None:
    data = run.summary_json()
    if not data or data.get("kernel_version") != KERNEL_VERSION:
        return None
    try:
        summary = _SUMMARY.validate_python(data)
    except ValidationError:
        return None
    return summary if summary.requests_sha256 == rows_digest(run.requests) else None


def _with_digest(summary: RunSummary, digest: str) -> RunSummary:
    from dataclasses import replace

    return replace(summary, requests_sha256=digest)
