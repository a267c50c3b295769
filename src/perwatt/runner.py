"""One run: a model on an endpoint, a workload, an energy meter → a run directory.

The order of a run:
1. start (or reach) the model server and start the energy sampler;
2. warm-up requests, not recorded, so that loading the model does not land on the first item;
3. the idle baseline: the model loaded and idle for `idle_seconds`;
4. the workload under closed-loop load; each completed request is scored and checkpointed;
5. stop the sampler, attribute energy to requests, compute the summary, finalize the run dir.
Ctrl-C at any point stops the server and finalizes the run with the requests that completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import perwatt
from perwatt.analysis.metrics import RunSummary, inter_token_gaps, latency
from perwatt.analysis.summaries import compute_summaries
from perwatt.config import RunSpec
from perwatt.endpoints.catalogue import PromptStyle, get_model, sha256_file
from perwatt.endpoints.client import Completion, StreamingClient
from perwatt.endpoints.llamacpp import ManagedServer, ServerSettings, start_server
from perwatt.endpoints.prompts import build_prompt
from perwatt.energy import (
    Attribution,
    EnergySampler,
    EnergySourceInfo,
    PowerTimeline,
    SourceRequest,
    TimelineRow,
    attribute,
    measure_idle,
    open_sources,
)
from perwatt.errors import PerwattError
from perwatt.hardware import hardware_info
from perwatt.load import arrival_times, run_closed_loop, run_open_loop
from perwatt.records import Item, RequestRecord
from perwatt.redact import redact_argv, redact_url
from perwatt.scoring import scorer_for, verdict
from perwatt.store import (
    SERVER_LOG_FILE,
    AttributionInfo,
    EnergyInfo,
    EnergyTotals,
    IdleInfo,
    LoadInfo,
    Manifest,
    ModelInfo,
    RunData,
    RunWriter,
    Segment,
    ServerInfo,
    SloInfo,
    check_requests,
    power_table,
    records_table,
)
from perwatt.workloads import load_workload

# Seconds of (unmeasured) time inserted between the timelines of two attempts of a resumed run.
RESUME_GAP_S = 1.0
# The workload window is cut into blocks of about this length (at most MAX_BLOCKS) for the block
# bootstrap of average power under concurrency.
BLOCK_S = 1.0
MAX_BLOCKS = 50


@dataclass(frozen=True)
class RunOutcome:
    """What `run_model` hands back: where the run is and its figures."""

    run_dir: Path
    summary: RunSummary
    interrupted: bool


@dataclass(frozen=True)
class Target:
    """The endpoint a run talks to, and which process its energy estimate follows."""

    model: str
    base_url: str
    prompt_style: PromptStyle
    pid: int | None
    server: ManagedServer | None
    model_file: Path | None


class RunInterrupted(Exception):
    """Ctrl-C during a run; the completed requests were saved in `run_dir`."""

    def __init__(self, run_dir: Path, completed: int) -> None:
        super().__init__(f"interrupted: {completed} completed requests saved in {run_dir}")
        self.run_dir = run_dir
        self.completed = completed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id(model: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{model}"


@contextlib.contextmanager
def open_target(spec: RunSpec, model: str, log_path: Path | None = None) -> Iterator[Target]:
    """Start the packaged model's server (its log to `log_path`), or describe the user's
    endpoint; always clean up."""
    if spec.endpoint is not None:
        style: PromptStyle = "chat" if spec.api == "chat" else "fewshot"
        yield Target(model, spec.endpoint, style, spec.server_pid, None, None)
        return
    packaged = get_model(model)
    path = packaged.path()
    settings = ServerSettings(
        n_ctx=spec.n_ctx, n_threads=spec.n_threads, n_batch=spec.n_batch, seed=spec.seed,
        parallel=spec.server_slots(),
    )  # fmt: skip
    server = start_server(path, packaged.name, settings=settings, port=spec.port, log_path=log_path)
    try:
        yield Target(model, server.base_url, packaged.prompt_style, server.pid, server, path)
    finally:
        server.stop()


def run_model(spec: RunSpec, model: str, console: Console) -> RunOutcome:
    """Measure one model on the spec's workload and write its run directory."""
    if spec.endpoint is None:
        get_model(model)  # an unknown name fails before anything is created
    items = load_workload(spec.workload, limit=spec.limit, seed=spec.seed, data_file=spec.data_file)
    for item in items:
        scorer_for(item)  # an unknown scorer fails before anything is created
    run_dir = spec.run_dir_for(model, new_run_id(model))
    writer = RunWriter(run_dir, resume=spec.resume)
    try:
        summary, interrupted = _attempt(spec, model, items, writer, console)
    finally:
        writer.close()
    if interrupted:
        raise RunInterrupted(run_dir, summary.n_requests)
    return RunOutcome(run_dir=run_dir, summary=summary, interrupted=False)


def _attempt(
    spec: RunSpec, model: str, items: list[Item], writer: RunWriter, console: Console
) -> tuple[RunSummary, bool]:
    """One attempt at the run in `writer`'s directory: continue what earlier ones left."""
    records = writer.checkpointed_records()
    segments = writer.checkpointed_segments()
    run_id = segments[0].run_id if segments else writer.run_dir.name
    done = {r.item_id for r in records}
    todo = [item for item in items if item.item_id not in done]
    # A resumed attempt continues the previous timeline after a marked, unmeasured gap.
    power_before = writer.checkpointed_power()
    offset = max((p.t for p in power_before), default=-RESUME_GAP_S) + RESUME_GAP_S
    energy_offset = _last_energy_per_domain(power_before)

    segment = Segment(run_id=run_id, started=_now(), t_start=offset)
    interrupted = False
    try:
        with open_target(spec, model, log_path=writer.run_dir / SERVER_LOG_FILE) as target:
            segment.server = _server_info(target, spec)
            prompts = {i.item_id: build_prompt(i, target.prompt_style) for i in items}
            writer.write_items(items, prompts)
            interrupted = _measure(
                spec, target, todo, records, writer, segment, energy_offset, len(items), console
            )
    except KeyboardInterrupt:
        interrupted = True
    except PerwattError:
        # Bad input found once the run started (busy port, unreachable endpoint, unknown model
        # on the endpoint): leave no half-made run behind unless an earlier attempt made it.
        if not segments and not records:
            writer.discard()
        raise
    segment.ended = _now()
    segments.append(segment)
    writer.save_segments(segments)
    return _finalize(spec, model, run_id, writer, records, segments, interrupted), interrupted


def _measure(
    spec: RunSpec,
    target: Target,
    todo: list[Item],
    records: list[RequestRecord],
    writer: RunWriter,
    segment: Segment,
    energy_offset: dict[str, float],
    total_items: int,
    console: Console,
) -> bool:
    """Sample energy while driving the endpoint; returns True when interrupted by Ctrl-C."""
    t0 = time.monotonic() - segment.t_start
    sources = open_sources(
        SourceRequest(
            pid=target.pid,
            watts_per_core=spec.cpu_watts_per_core,
            idle_watts=spec.cpu_idle_watts,
            scope="the managed llama.cpp server's process tree" if target.server else None,
            prefer_estimate=spec.energy == "estimate",
            prometheus=spec.prometheus,
        )
    )
    segment.energy_sources = [s.describe() for s in sources]
    sampler = EnergySampler(sources, interval_s=spec.sample_interval_s, t0=t0)

    def checkpoint_power() -> None:
        writer.append_power(_power_rows(sampler.take_new_rows(), energy_offset))

    drive = _Drive(spec, target, segment, records, writer, sampler, checkpoint_power, console)
    sampler.start()
    try:
        asyncio.run(drive.run(todo, total_items, clock=lambda: time.monotonic() - t0))
        return False
    except KeyboardInterrupt:
        return True
    finally:
        sampler.stop()
        checkpoint_power()
        segment.sampler_failed_reads = sampler.failed_reads
        segment.sampler_errors = sampler.errors[:20]
        segment.held_reads = sum(getattr(s, "held_reads", 0) for s in sources)
        for source in sources:
            tracker = getattr(source, "tracker", None)
            if tracker is not None:  # hardware counters: wraps, resets, stalls
                segment.counter_events += [
                    f"{source.domain}: {e.kind} at t={e.t - t0:.3f}s: {e.detail}"
                    for e in tracker.events
                ]
            source.close()
        # Described again at the end: a counter's measured update interval is known only now.
        segment.energy_sources = [s.describe() for s in sources]
        if segment.idle_window is not None:
            segment.idle = measure_idle(sampler.timeline(), *segment.idle_window)


class _Drive:
    """The asynchronous part of a run: warm-up, idle baseline, then the workload."""

    def __init__(
        self,
        spec: RunSpec,
        target: Target,
        segment: Segment,
        records: list[RequestRecord],
        writer: RunWriter,
        sampler: EnergySampler,
        checkpoint_power: Callable[[], None],
        console: Console,
    ) -> None:
        self.spec, self.target, self.segment = spec, target, segment
        self.records, self.writer, self.sampler = records, writer, sampler
        self.checkpoint_power, self.console = checkpoint_power, console

    async def run(self, todo: list[Item], total_items: int, clock: Callable[[], float]) -> None:
        spec, target = self.spec, self.target
        async with StreamingClient(
            target.base_url,
            target.model,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            seed=spec.seed,
            timeout_s=spec.request_timeout_s,
            clock=clock,
        ) as client:
            served = await client.check_reachable()
            if spec.endpoint is not None and served and target.model not in served:
                raise PerwattError(
                    f"model '{target.model}' is not served by {redact_url(spec.endpoint)}; "
                    f"it serves: {', '.join(served)}"
                )
            if not todo:
                return
            for item in todo[: spec.warmup_requests]:
                await client.complete(build_prompt(item, target.prompt_style))
            self.segment.warmup_requests = min(spec.warmup_requests, len(todo))
            if spec.idle_seconds > 0:
                t_idle = clock()
                await asyncio.sleep(spec.idle_seconds)
                self.segment.idle_window = (t_idle, clock())
            await self._workload(client, todo, total_items, clock)

    async def _workload(
        self,
        client: StreamingClient,
        todo: list[Item],
        total_items: int,
        clock: Callable[[], float],
    ) -> None:
        endpoint = redact_url(self.target.base_url)
        records = self.records
        correct = sum(bool(r.correct) for r in records)
        e_start = self.sampler.total_j()
        last_flush = time.monotonic()
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]}"),
            TextColumn("{task.fields[joules]} J ({task.fields[label]})"),
            TimeElapsedColumn(),
            console=self.console,
        )
        task = progress.add_task(
            self.target.model,
            total=total_items,
            completed=len(records),
            acc="–",
            joules="0",
            label=_label(self.segment.energy_sources),
        )

        async def send(item: Item, t_scheduled: float) -> tuple[float, Completion]:
            return t_scheduled, await client.complete(build_prompt(item, self.target.prompt_style))

        def on_done(item: Item, sent: tuple[float, Completion]) -> None:
            nonlocal correct, last_flush
            t_scheduled, completion = sent
            record = make_record(
                self.segment.run_id, len(records), self.target.model, endpoint, item,
                t_scheduled, completion,
            )  # fmt: skip
            records.append(record)
            self.writer.append_request(record)
            correct += bool(record.correct)
            joules = self.sampler.total_j() - e_start
            progress.update(
                task, advance=1, acc=f"{100 * correct / len(records):.0f}%", joules=f"{joules:,.0f}"
            )
            if time.monotonic() - last_flush > 2.0:
                self.checkpoint_power()
                last_flush = time.monotonic()

        cpu_before = time.process_time()
        spec = self.spec
        with progress:
            if spec.rate is None:
                await run_closed_loop(
                    todo, send, concurrency=spec.concurrency, clock=clock, on_done=on_done,
                    stop_after_s=spec.duration_s,
                )  # fmt: skip
            else:
                offsets = arrival_times(
                    len(todo), spec.rate, burstiness=spec.burstiness, seed=spec.seed
                )
                await run_open_loop(
                    todo, send, offsets=offsets, clock=clock, on_done=on_done,
                    max_in_flight=spec.max_in_flight, stop_after_s=spec.duration_s,
                )  # fmt: skip
        self.segment.harness_cpu_s = time.process_time() - cpu_before


def make_record(
    run_id: str,
    request_id: int,
    model: str,
    endpoint: str,
    item: Item,
    t_scheduled: float,
    completion: Completion,
) -> RequestRecord:
    """A request row from what the client saw and what the scorer concluded (`verdict`: only a
    complete answer can be correct). Latency columns are derived at finalize, by the kernel."""
    scored = verdict(item, completion.status, completion.text)
    return RequestRecord(
        run_id=run_id,
        request_id=request_id,
        model=model,
        endpoint=endpoint,
        workload=item.workload,
        task=item.task,
        domain=item.domain,
        item_id=item.item_id,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        t_scheduled=t_scheduled,
        t_sent=completion.t_sent,
        t_first_token=completion.t_first_token,
        t_done=completion.t_done,
        ttft_s=None,
        e2e_s=completion.t_done - completion.t_sent,
        tpot_s=None,
        status=completion.status,
        error=completion.error,
        finish_reason=completion.finish_reason,
        response_text=completion.text,
        answer=scored.answer,
        reference=item.reference,
        correct=scored.correct,
        score=scored.score,
        itl_s=inter_token_gaps(completion.chunk_times),
    )


def _derive_latency(records: Sequence[RequestRecord]) -> None:
    """Fill each row's TTFT, e2e and TPOT from its times, by the kernel's one definition."""
    if not records:
        return
    lat = latency(
        [r.t_sent for r in records],
        [np.nan if r.t_first_token is None else r.t_first_token for r in records],
        [r.t_done for r in records],
        [np.nan if r.completion_tokens is None else r.completion_tokens for r in records],
    )
    for k, record in enumerate(records):
        record.ttft_s = _finite(lat.ttft_s[k])
        record.e2e_s = float(lat.e2e_s[k])
        record.tpot_s = _finite(lat.tpot_s[k])


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _finalize(
    spec: RunSpec,
    model: str,
    run_id: str,
    writer: RunWriter,
    records: list[RequestRecord],
    segments: list[Segment],
    interrupted: bool,
) -> RunSummary:
    """Attribute energy to the requests, summarize with the kernel, write the run directory."""
    power = writer.checkpointed_power()
    timeline = PowerTimeline.from_rows(power)
    idle_w = _idle_power(segments)
    # Token-weighted: a request's share of a slice is proportional to the tokens it processed.
    weights = (
        [(r.prompt_tokens or 0) + (r.completion_tokens or 0) for r in records]
        if spec.attribution == "tokens"
        else None
    )
    result = attribute(
        timeline.combined(),
        [(r.t_sent, r.t_done) for r in records],
        idle_power_w=idle_w,
        weights=weights,
    )
    infos = next((s.energy_sources for s in segments if s.energy_sources), [])
    label = _label(infos)
    for record, gross, net in zip(records, result.gross_j, result.net_j, strict=True):
        record.energy_j = float(gross)
        record.energy_net_j = float(net)
        record.energy_source = label
    _derive_latency(records)
    totals = _totals(records, timeline, result, idle_w, infos, label)
    manifest = _manifest(spec, model, run_id, segments, totals, result, interrupted, timeline)
    run = RunData(writer.run_dir, manifest, check_requests(records_table(records), writer.run_dir),
                  power_table(power))  # fmt: skip
    (summary,) = compute_summaries([run])
    writer.finalize(records, power, manifest, summary, complete=not interrupted)
    return summary


def _totals(
    records: Sequence[RequestRecord],
    timeline: PowerTimeline,
    result: Attribution,
    idle_w: float,
    infos: Sequence[EnergySourceInfo],
    label: str,
) -> EnergyTotals:
    """What the meter saw: totals, the workload window, and the window cut into time blocks."""
    first = min((r.t_sent for r in records), default=0.0)
    last = max((r.t_done for r in records), default=0.0)
    window_s = last - first
    blocks: list[tuple[float, float]] = []
    if records and window_s > 0:
        count = min(MAX_BLOCKS, int(window_s / BLOCK_S))
        edges = np.linspace(first, last, count + 1) if count >= 1 else np.array([])
        blocks = [(float(b - a), timeline.energy_between(float(a), float(b)))
                  for a, b in itertools.pairwise(edges)]  # fmt: skip
    return EnergyTotals(
        label=label,
        metered_total_j=float(result.total_j),
        unattributed_j=float(result.unattributed_j),
        idle_power_w=idle_w,
        window_s=window_s,
        window_j=timeline.energy_between(first, last) if records else 0.0,
        uncertainty="; ".join(i.method for i in infos),
        band=next((i.band for i in infos if i.band), ""),
        window_blocks=blocks,
    )


def _power_rows(rows: list[TimelineRow], energy_offset: dict[str, float]) -> list[TimelineRow]:
    """Samples as power.parquet rows, cumulative across resumed attempts."""
    return [
        dataclasses.replace(row, energy_j=row.energy_j + energy_offset.get(row.domain, 0.0))
        for row in rows
    ]


def _last_energy_per_domain(rows: list[TimelineRow]) -> dict[str, float]:
    last: dict[str, float] = {}
    for row in rows:
        last[row.domain] = row.energy_j
    return last


def _idle_power(segments: list[Segment]) -> float:
    """The idle baseline in W: the duration-weighted mean over the attempts that measured one."""
    measured = [s.idle for s in segments if s.idle is not None and s.idle.duration_s > 0]
    if not measured:
        return 0.0
    total = sum(b.duration_s for b in measured)
    return sum(b.total_power_w * b.duration_s for b in measured) / total


def _server_info(target: Target, spec: RunSpec) -> ServerInfo:
    if target.server is None:
        return ServerInfo(
            managed=False,
            endpoint=redact_url(target.base_url),
            energy_scope=f"process tree of pid {target.pid}" if target.pid else "whole machine",
        )
    server = target.server
    described = server.describe()
    return ServerInfo(
        managed=True,
        software=described["software"],
        endpoint=server.base_url,
        pid=server.pid,
        startup_s=described["startup_s"],
        command=described["command_line"],
        settings=described["settings"],
        build=described["build"]
        | {"llama_cpp_revision": described["llama_cpp_revision"], "binary": described["binary"]},
        log=SERVER_LOG_FILE,
        model_file=str(server.model_path),
        model_sha256=sha256_file(server.model_path),
        energy_scope=f"process tree of the managed server (pid {server.pid})",
    )


def _label(infos: Sequence[EnergySourceInfo]) -> str:
    """The run's energy label: each distinct source label, e.g. measured:nvml+measured:rapl."""
    return "+".join(dict.fromkeys(i.label for i in infos)) or "none"


def _anomalies(spec: RunSpec, segments: list[Segment], timeline: PowerTimeline) -> list[str]:
    """Everything about the energy timeline a reader must know; never silently absorbed."""
    found = [e for s in segments for e in s.counter_events] + [
        f"unmeasured gap of {RESUME_GAP_S:g}s marked between attempt {i} and {i + 1} (resume)"
        for i in range(1, len(segments))
    ]
    # A gap of ten sampling intervals means the sampler stalled (or the run was resumed).
    for anomaly in timeline.anomalies(max_gap_s=10 * spec.sample_interval_s):
        found.append(
            f"{anomaly.domain}: {anomaly.kind} at t={anomaly.t_start:.3f}–{anomaly.t_end:.3f}s: "
            f"{anomaly.detail}"
        )
    for i, s in enumerate(segments, start=1):
        if s.sampler_failed_reads:
            found.append(f"attempt {i}: {s.sampler_failed_reads} failed energy reads "
                         f"({'; '.join(s.sampler_errors[:3])})")  # fmt: skip
        if s.held_reads:
            found.append(f"attempt {i}: {s.held_reads} readings held (came out below the last)")
    return found


def _manifest(
    spec: RunSpec,
    model: str,
    run_id: str,
    segments: list[Segment],
    totals: EnergyTotals,
    result: Attribution,
    interrupted: bool,
    timeline: PowerTimeline,
) -> Manifest:
    """Provenance: what ran, where, with what software, and how its energy was obtained."""
    packaged = None if spec.endpoint else get_model(model)
    return Manifest(
        run_id=run_id,
        perwatt_version=perwatt.__version__,
        status="interrupted" if interrupted else "complete",
        requests=len(result.gross_j),
        command_line=redact_argv(sys.argv),
        config=spec.model_copy(update={"models": (model,)}),
        model=ModelInfo(
            name=model,
            display_name=packaged.display_name if packaged else model,
            package=packaged.package if packaged else None,
            prompt_style=packaged.prompt_style if packaged else spec.api,
            active_params=packaged.active_params if packaged else None,
            quantization=packaged.quantization if packaged else None,
        ),
        workload=spec.workload,
        seed=spec.seed,
        load=LoadInfo(
            label=spec.load_label(),
            mode="closed-loop" if spec.rate is None else "open-loop",
            concurrency=spec.concurrency if spec.rate is None else None,
            rate_per_s=spec.rate,
            burstiness=spec.burstiness if spec.rate is not None else None,
            max_in_flight=spec.max_in_flight,
            duration_s=spec.duration_s,
            warmup_requests_excluded=spec.warmup_requests,
            slo=SloInfo(ttft_s=spec.slo_ttft_s, e2e_s=spec.slo_e2e_s),
        ),
        hardware=hardware_info(),
        software={
            "python": sys.version.split()[0],
            "perwatt": perwatt.__version__,
            "server": next(
                (s.server.software for s in segments if s.server and s.server.managed), ""
            ),
        },
        energy=EnergyInfo(
            label=totals.label,
            sources=next((s.energy_sources for s in segments if s.energy_sources), []),
            sample_interval_s=spec.sample_interval_s,
            idle_baseline=IdleInfo(
                power_w=totals.idle_power_w, segments=[s.idle for s in segments]
            ),
            totals=totals,
            attribution=AttributionInfo(
                method=(
                    "token-weighted share (prompt + completion tokens) of each time slice among "
                    "the requests active in it"
                    if spec.attribution == "tokens"
                    else "equal share of each time slice among the requests active in it"
                ),
                clipped_requests=int(result.clipped),
            ),
            anomalies=_anomalies(spec, segments, timeline),
        ),
        segments=segments,
        started=segments[0].started if segments else "",
        ended=segments[-1].ended if segments else "",
    )
