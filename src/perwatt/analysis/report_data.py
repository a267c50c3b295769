"""Everything the HTML report shows, computed here so that the report only presents it.

`build_report_data(runs)` gathers, for a set of run directories: each run's summary (the
kernel's), the median latency with its interval, the power timeline per domain (resampled for
drawing, with its energy kept exact), the questions asked (from items.parquet), which runs lie
on the accuracy-versus-J/correct Pareto frontier, which runs form load sweeps, and — when two or
more models answered the same items — the routing analysis.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perwatt.analysis.metrics import (
    Estimate,
    RunSummary,
    median_interval,
    pareto_frontier,
)
from perwatt.analysis.summaries import summaries_of
from perwatt.analysis.tasks import TaskBar, task_timeline
from perwatt.errors import PerwattError
from perwatt.records import RequestRecord
from perwatt.store import RunData, ServerMetricsInfo

# Most points drawn per power curve: enough for the eye, small enough for the file.
MAX_TIMELINE_POINTS = 1500


@dataclass(frozen=True)
class PowerSeries:
    """Power of one energy domain over time, ready to draw as a step line (W; None: a gap)."""

    domain: str
    source: str
    t: list[float]
    power_w: list[float | None]


@dataclass(frozen=True)
class ServerSeries:
    """The server's own counters over time (server_metrics.parquet), thinned for drawing."""

    software: str
    t: list[float]
    requests_running: list[float | None]
    requests_waiting: list[float | None]
    kv_cache_usage: list[float | None]  # fraction 0..1; all None where the server has none


@dataclass(frozen=True)
class RunView:
    """One run with what the report shows of it."""

    run: RunData
    summary: RunSummary
    records: list[RequestRecord]
    e2e_p50: Estimate  # the median end-to-end latency with its bootstrap interval
    power: list[PowerSeries]
    questions: dict[str, str]  # item id → the question asked (empty for older runs)
    server: ServerSeries | None = None  # None: the endpoint exposed no /metrics
    server_source: ServerMetricsInfo | None = None  # how they were scraped
    server_unavailable: str = ""  # why there are none (from the manifest), if so
    timeline: list[TaskBar] = field(default_factory=list)  # a task run's calls and tools


@dataclass(frozen=True)
class LoadSweep:
    """Runs of one model and workload at two or more load levels of one load mode."""

    model: str
    workload: str
    mode: str  # "closed-loop", or "open-loop" with its burstiness
    runs: list[int]  # indices into ReportData.views, by level
    levels: list[float]  # requests in flight (closed loop) or offered rate per second


@dataclass(frozen=True)
class ReportData:
    views: list[RunView]
    frontier: list[int]  # indices of views on the accuracy-vs-J/correct Pareto frontier
    sweeps: list[LoadSweep]
    routing: object | None = None  # a RoutingReport when routing applies
    routing_left_out: str = ""  # why there is no routing section, in words
    notes: list[str] = field(default_factory=list)


def build_report_data(runs: Sequence[RunData], *, routing: bool = True) -> ReportData:
    """The report's data for `runs` (summaries by the kernel, nothing recomputed elsewhere)."""
    if not runs:
        raise PerwattError("the HTML report needs at least one run directory")
    summaries = summaries_of(runs)
    views = []
    for run, summary in zip(runs, summaries, strict=True):
        records = run.records()
        completed = np.array(
            [r.t_done - r.t_sent for r in records if r.status in ("ok", "truncated")], dtype=float
        )
        items = run.items() or []
        views.append(
            RunView(
                run=run,
                summary=summary,
                records=records,
                e2e_p50=median_interval(
                    completed,
                    resamples=run.manifest.config.bootstrap_resamples,
                    seed=run.manifest.seed,
                ),
                power=power_series(run),
                questions={i.item_id: i.question for i in items},
                server=server_series(run),
                server_source=_server_source(run),
                server_unavailable=_server_unavailable(run),
                timeline=task_timeline(records),
            )
        )
    placed = [
        k
        for k, v in enumerate(views)
        if v.summary.joules_per_correct.value is not None and v.summary.accuracy.value is not None
    ]
    points = [
        (views[k].summary.joules_per_correct.value or 0.0, views[k].summary.accuracy.value or 0.0)
        for k in placed
    ]
    frontier = [placed[i] for i in pareto_frontier(points)]
    report, why_not = routing_for(runs) if routing else (None, "")
    return ReportData(views, frontier, load_sweeps(views), report, why_not)


def load_level(run: RunData) -> tuple[str, float]:
    """The run's load mode and level: requests in flight (closed loop) or offered rate."""
    load = run.manifest.load
    if load.rate_per_s is not None:
        burst = load.burstiness
        mode = "open-loop" + (f" (burstiness {burst:g})" if burst not in (None, 1.0) else "")
        return mode, float(load.rate_per_s)
    return "closed-loop", float(load.concurrency or 1)


def load_sweeps(views: Sequence[RunView]) -> list[LoadSweep]:
    """Runs of one model, workload and load mode at two or more levels."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for k, v in enumerate(views):
        mode, _ = load_level(v.run)
        groups.setdefault((v.summary.model, v.summary.workload, mode), []).append(k)
    out = []
    for (model, workload, mode), members in groups.items():
        members = sorted(members, key=lambda k: load_level(views[k].run)[1])
        levels = [load_level(views[k].run)[1] for k in members]
        if len(set(levels)) >= 2:
            out.append(LoadSweep(model, workload, mode, members, levels))
    return out


def routing_for(runs: Sequence[RunData]) -> tuple[object | None, str]:
    """The routing analysis of `runs` when it applies, else None and the reason, in words.

    Routing needs two or more models that answered the same items; a model measured at several
    load levels takes part with its lightest-load run (closed loop before open loop), and of
    several such runs, the last given.
    """
    from perwatt.analysis.routing import build_study, route_report

    by_model: dict[str, list[RunData]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run)
    lightest = {model: min(reversed(group), key=_lightness) for model, group in by_model.items()}
    if len(lightest) < 2:
        return None, "routing needs runs of two or more models"
    try:
        study = build_study(list(lightest.values()))
    except PerwattError as exc:
        return None, str(exc)
    seed = next(iter(lightest.values())).manifest.seed
    return route_report(study, seed=seed), ""


def _lightness(run: RunData) -> tuple[bool, float]:
    mode, level = load_level(run)
    return (mode != "closed-loop", level)


def power_series(run: RunData, max_points: int = MAX_TIMELINE_POINTS) -> list[PowerSeries]:
    """Each energy domain's power over time, from power.parquet.

    From cumulative energy (power = ΔE/Δt between kept samples, so resampling a long run keeps
    its energy exact), else from the recorded power. A negative energy step (a counter reset or
    wrap, recorded as an anomaly) is drawn as a gap, not a dip.
    """
    columns = run.power.to_pydict()
    by_domain: dict[str, list[int]] = {}
    for i, domain in enumerate(columns["domain"]):
        by_domain.setdefault(str(domain), []).append(i)
    out = []
    for domain, rows in by_domain.items():
        rows.sort(key=lambda i: columns["t"][i])
        t = [float(columns["t"][i]) for i in rows]
        energy = [columns["energy_j"][i] for i in rows]
        source = str(columns["source"][rows[0]] or "")
        keep = _spread(len(t), max_points)
        if all(e is not None for e in energy) and len(t) >= 2:
            ts, ps = [t[keep[0]]], [None]
            for a, b in itertools.pairwise(keep):
                dt, de = t[b] - t[a], float(energy[b]) - float(energy[a])
                ts.append(t[b])
                ps.append(de / dt if dt > 0 and de >= 0 else None)
            out.append(PowerSeries(domain, source, ts, ps))
        else:
            power = [columns["power_w"][i] for i in rows]
            out.append(PowerSeries(domain, source, [t[i] for i in keep], [power[i] for i in keep]))
    return out


def server_series(run: RunData, max_points: int = MAX_TIMELINE_POINTS) -> ServerSeries | None:
    """The server's counters over time, from server_metrics.parquet (None without one)."""
    table = run.server_metrics()
    if table is None or table.num_rows == 0:
        return None
    columns = table.sort_by("t").to_pydict()
    keep = _spread(table.num_rows, max_points)

    def pick(name: str) -> list[float | None]:
        return [columns[name][i] for i in keep]

    software = next((s for s in columns["software"] if s), "")
    return ServerSeries(software, [float(columns["t"][i]) for i in keep],
                        pick("requests_running"), pick("requests_waiting"),
                        pick("kv_cache_usage"))  # fmt: skip


def _server_source(run: RunData) -> ServerMetricsInfo | None:
    return next((s.server_metrics for s in run.manifest.segments
                 if s.server_metrics is not None and s.server_metrics.available), None)  # fmt: skip


def _server_unavailable(run: RunData) -> str:
    """Why a run has no server counters: the manifest's reasons, or that it predates them."""
    if _server_source(run) is not None:
        return ""
    infos = [s.server_metrics for s in run.manifest.segments if s.server_metrics is not None]
    reasons = "; ".join(dict.fromkeys(i.reason for i in infos if i.reason))
    return reasons or "not recorded (a run written before perwatt scraped /metrics)"


def _spread(n: int, most: int) -> list[int]:
    if n <= most:
        return list(range(n))
    return sorted({round(float(x)) for x in np.linspace(0, n - 1, most)})
