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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import perwatt
from perwatt.analysis.metrics import EnergyTotals, RunSummary, Slo, summarize
from perwatt.config import RunSpec
from perwatt.endpoints.catalogue import PromptStyle, get_model, sha256_file
from perwatt.endpoints.client import Completion, StreamingClient
from perwatt.endpoints.llamacpp import ManagedServer, ServerSettings, start_server
from perwatt.endpoints.prompts import build_prompt
from perwatt.energy import (
    Attribution,
    EnergySampler,
    EnergySourceInfo,
    IdleBaseline,
    PowerTimeline,
    TimelineRow,
    attribute,
    measure_idle,
)
from perwatt.energy.select import run_sources
from perwatt.errors import PerwattError
from perwatt.hardware import hardware_info
from perwatt.load import arrival_times, run_closed_loop, run_open_loop
from perwatt.records import Item, RequestRecord
from perwatt.redact import redact_argv, redact_url
from perwatt.scoring import score_response
from perwatt.store.rundir import PowerRow, RunWriter
from perwatt.workloads import load_workload

# The managed server's log, kept in the run directory as provenance (appended across attempts).
SERVER_LOG = "server.log"
# Seconds of (unmeasured) time inserted between the timelines of two attempts of a resumed run.
RESUME_GAP_S = 1.0


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


@dataclass
class Segment:
    """One attempt at a run: a fresh run has one; each --resume adds another."""

    run_id: str
    started: str
    t_start: float
    ended: str = ""
    warmup_requests: int = 0
    idle_window: tuple[float, float] | None = None
    idle: IdleBaseline | None = None
    energy_sources: list[EnergySourceInfo] = field(default_factory=list)
    counter_events: list[str] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    # CPU seconds perwatt itself (client, scoring, checkpoints, sampler thread) used while the
    # workload ran: on a small machine that CPU competes with the server.
    harness_cpu_s: float = 0.0
    # What the energy sampler could not do: failed reads, and readings held because they came
    # out lower than the previous one (a counter must never step back).
    sampler_failed_reads: int = 0
    sampler_errors: list[str] = field(default_factory=list)
    held_reads: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        data = dict(data)
        if data.get("idle_window") is not None:
            data["idle_window"] = tuple(data["idle_window"])
        if data.get("idle") is not None:
            data["idle"] = IdleBaseline.from_dict(data["idle"])
        data["energy_sources"] = [EnergySourceInfo(**i) for i in data.get("energy_sources", [])]
        return cls(**data)


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
    run_dir = spec.run_dir_for(model, new_run_id(model))
    writer = RunWriter(run_dir, resume=spec.resume)
    records = writer.checkpointed_records()
    segments = [Segment.from_json(d) for d in writer.checkpointed_segments()]
    run_id = segments[0].run_id if segments else run_dir.name
    done = {r.item_id for r in records}
    todo = [item for item in items if item.item_id not in done]
    # A resumed attempt continues the previous timeline after a marked, unmeasured gap.
    power_before = writer.checkpointed_power()
    offset = max((p.t for p in power_before), default=-RESUME_GAP_S) + RESUME_GAP_S
    energy_offset = _last_energy_per_domain(power_before)

    segment = Segment(run_id=run_id, started=_now(), t_start=offset)
    interrupted = False
    try:
        with open_target(spec, model, log_path=run_dir / SERVER_LOG) as target:
            segment.server = _server_info(target, spec)
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

    summary = _finalize(spec, model, run_id, writer, records, segments, interrupted)
    if interrupted:
        raise RunInterrupted(run_dir, len(records))
    return RunOutcome(run_dir=run_dir, summary=summary, interrupted=False)


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
    sources = run_sources(
        target.pid,
        watts_per_core=spec.cpu_watts_per_core,
        idle_watts=spec.cpu_idle_watts,
        scope="the managed llama.cpp server's process tree" if target.server else None,
        prefer_estimate=spec.energy == "estimate",
        prometheus=spec.prometheus,
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
    """A request row from what the client saw and what the scorer concluded.

    Only a complete answer (status `ok`) can be correct: an error, a timeout or an answer cut by
    the token limit counts as incorrect, and keeps its own status so it is reported, not dropped.
    """
    if completion.status in ("ok", "truncated"):
        score = score_response(item, completion.text)
        answer, value = score.answer, score.score
        # A judge-scored workload leaves `correct` None until `perwatt score` judges it; a
        # truncated answer is incorrect either way.
        if score.correct is None:
            correct = None if completion.status == "ok" else False
        else:
            correct = bool(score.correct) and completion.status == "ok"
    else:
        answer, value, correct = None, 0.0, False
    ttft = (
        completion.t_first_token - completion.t_sent
        if completion.t_first_token is not None
        else None
    )
    tokens = completion.completion_tokens
    tpot = (
        (completion.t_done - completion.t_first_token) / (tokens - 1)
        if completion.t_first_token is not None and tokens and tokens > 1
        else None
    )
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
        completion_tokens=tokens,
        t_scheduled=t_scheduled,
        t_sent=completion.t_sent,
        t_first_token=completion.t_first_token,
        t_done=completion.t_done,
        ttft_s=ttft,
        e2e_s=completion.t_done - completion.t_sent,
        tpot_s=tpot,
        status=completion.status,
        error=completion.error,
        finish_reason=completion.finish_reason,
        response_text=completion.text,
        answer=answer,
        reference=item.reference,
        correct=correct,
        score=value,
        itl_s=[b - a for a, b in itertools.pairwise(completion.chunk_times)],
    )


def _finalize(
    spec: RunSpec,
    model: str,
    run_id: str,
    writer: RunWriter,
    records: list[RequestRecord],
    segments: list[Segment],
    interrupted: bool,
) -> RunSummary:
    """Attribute energy to the requests, summarize, and write the run directory."""
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
    first = min((r.t_sent for r in records), default=0.0)
    last = max((r.t_done for r in records), default=0.0)
    totals = EnergyTotals(
        label=label,
        metered_total_j=float(result.total_j),
        unattributed_j=float(result.unattributed_j),
        idle_power_w=idle_w,
        window_s=last - first,
        window_j=timeline.energy_between(first, last) if records else 0.0,
        uncertainty="; ".join(i.method for i in infos),
        band=next((i.band for i in infos if i.band), ""),
    )
    summary = summarize(
        records,
        totals,
        run_id=run_id,
        model=model,
        workload=spec.workload,
        concurrency=spec.concurrency if spec.rate is None else 0,
        load=spec.load_label(),
        slo=Slo(ttft_s=spec.slo_ttft_s, e2e_s=spec.slo_e2e_s),
        resamples=spec.bootstrap_resamples,
        seed=spec.seed,
    )
    manifest = _manifest(
        spec, model, run_id, segments, totals, result, interrupted, len(records), timeline
    )
    writer.finalize(
        records,
        power,
        manifest,
        summary,
        complete=not interrupted,
    )
    return summary


def _power_rows(rows: list[TimelineRow], energy_offset: dict[str, float]) -> list[PowerRow]:
    """Samples as power.parquet rows, cumulative across resumed attempts."""
    return [
        PowerRow(
            t=row.t,
            domain=row.domain,
            energy_j=row.energy_j + energy_offset.get(row.domain, 0.0),
            power_w=row.power_w,
            source=row.source,
        )
        for row in rows
    ]


def _last_energy_per_domain(rows: list[PowerRow]) -> dict[str, float]:
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


def _server_info(target: Target, spec: RunSpec) -> dict[str, Any]:
    if target.server is None:
        return {
            "managed": False,
            "endpoint": redact_url(target.base_url),
            "energy_scope": f"process tree of pid {target.pid}" if target.pid else "whole machine",
        }
    server = target.server
    return {
        "managed": True,
        "endpoint": server.base_url,
        "pid": server.pid,
        **server.describe(),
        "log": SERVER_LOG,
        "model_file": str(server.model_path),
        "model_sha256": sha256_file(server.model_path),
        "energy_scope": f"process tree of the managed server (pid {server.pid})",
    }


def _label(infos: list[EnergySourceInfo]) -> str:
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
    n_records: int,
    timeline: PowerTimeline,
) -> dict[str, Any]:
    """Provenance: what ran, where, with what software, and how its energy was obtained."""
    packaged = None if spec.endpoint else get_model(model)
    return {
        "run_id": run_id,
        "perwatt_version": perwatt.__version__,
        "status": "interrupted" if interrupted else "complete",
        "requests": n_records,
        "command_line": redact_argv(sys.argv),
        "config": spec.model_dump(mode="json") | {"models": [model]},
        "model": {
            "name": model,
            "display_name": packaged.display_name if packaged else model,
            "package": packaged.package if packaged else None,
            "prompt_style": packaged.prompt_style if packaged else spec.api,
            "active_params": packaged.active_params if packaged else None,
            "quantization": packaged.quantization if packaged else None,
        },
        "workload": spec.workload,
        "seed": spec.seed,
        "load": {
            "label": spec.load_label(),
            "mode": "closed-loop" if spec.rate is None else "open-loop",
            "concurrency": spec.concurrency if spec.rate is None else None,
            "rate_per_s": spec.rate,
            "burstiness": spec.burstiness if spec.rate is not None else None,
            "max_in_flight": spec.max_in_flight,
            "duration_s": spec.duration_s,
            "warmup_requests_excluded": spec.warmup_requests,
            "slo": {"ttft_s": spec.slo_ttft_s, "e2e_s": spec.slo_e2e_s},
        },
        "hardware": dataclasses.asdict(hardware_info()),
        "software": {
            "python": sys.version.split()[0],
            "perwatt": perwatt.__version__,
            "server": next(
                (s.server.get("software") for s in segments if s.server.get("managed")), None
            ),
        },
        "energy": {
            "label": totals.label,
            "sources": [
                dataclasses.asdict(i)
                for i in next((s.energy_sources for s in segments if s.energy_sources), [])
            ],
            "sample_interval_s": spec.sample_interval_s,
            "idle_baseline": {
                "power_w": totals.idle_power_w,
                "segments": [dataclasses.asdict(s.idle) if s.idle else None for s in segments],
            },
            "totals": dataclasses.asdict(totals),
            "attribution": {
                "method": (
                    "token-weighted share (prompt + completion tokens) of each time slice among "
                    "the requests active in it"
                    if spec.attribution == "tokens"
                    else "equal share of each time slice among the requests active in it"
                ),
                "clipped_requests": int(result.clipped),
            },
            "anomalies": _anomalies(spec, segments, timeline),
        },
        "segments": [dataclasses.asdict(s) for s in segments],
        "started": segments[0].started if segments else "",
        "ended": segments[-1].ended if segments else "",
    }
