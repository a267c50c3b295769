"""The metrics kernel: every per-run figure perwatt reports, defined once (DESIGN.md, "Metrics").

Every consumer — the run's own summary, `report`, `runs ls`, `trends`, `compare`, `route`, the
sweep table and the HTML report — gets its figures from here, so one number is never computed
two ways. The kernel works on columns (`RequestColumns`, many runs at once) and the per-item
matrix (`ItemMatrix`, with its one rule for repeated items), and resamples items with one paired
bootstrap (`_bootstrap`). docs/metrics.md gives each definition in words.

For run r, item i (asked once, or the mean of its attempts) has correct c_i ∈ [0, 1] (a
request that errored, timed out or was cut off is incorrect, never dropped), energy E_i and
latency L_i:

- accuracy Σc/n; J/query ΣE/n; J/correct ΣE/Σc; correct per kJ 1000·Σc/ΣE;
- average power ΣE/ΣL when requests ran one at a time; under concurrency the metered window's
  energy over its length (requests overlap, so ΣL would count time twice), with a block
  bootstrap over time windows for its interval;
- IPW = accuracy / average power; beside it the reference harness's reading, accuracy over the
  mean per-query power mean(E_i/L_i);
- latency percentiles over completed requests: TTFT, end-to-end, TPOT (vLLM's definition:
  (t_done − t_first_token) / (completion_tokens − 1)) and inter-token gaps; send lag p99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perwatt.analysis._bootstrap import (
    CI_LEVEL,
    Estimate,
    block_resample_sums,
    bootstrap_sums,
    estimate,
    interval,
    ratio,
)
from perwatt.analysis._columns import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_TIMEOUT,
    STATUS_TRUNCATED,
    ItemMatrix,
    RequestColumns,
    item_matrix,
    nz,
)
from perwatt.records import STATUSES
from perwatt.store import EnergyTotals

# Bumped whenever a figure's definition changes: a summary.json written by another version is
# then computed again rather than trusted.
KERNEL_VERSION = 2


@dataclass(frozen=True)
class Slo:
    """A latency objective; a request meets it when every bound given holds."""

    ttft_s: float | None = None
    e2e_s: float | None = None

    def describe(self) -> str:
        bounds = [f"ttft≤{self.ttft_s:g}s" if self.ttft_s is not None else "",
                  f"e2e≤{self.e2e_s:g}s" if self.e2e_s is not None else ""]  # fmt: skip
        return ", ".join(b for b in bounds if b) or "none"


@dataclass(frozen=True)
class RunContext:
    """What the kernel needs about one run besides its rows (all from its manifest)."""

    run_id: str
    model: str
    workload: str
    energy: EnergyTotals
    concurrency: int | None = 1  # None: open loop
    load: str = ""
    slo: Slo = field(default_factory=Slo)


@dataclass(frozen=True)
class DomainSummary:
    domain: str
    n: int  # items
    accuracy: Estimate  # with the 95% Wilson interval (small per-domain counts)
    energy_per_query_j: float | None


@dataclass(frozen=True)
class RunSummary:
    """The figures of one run: what summary.json stores and every table shows."""

    run_id: str
    model: str
    workload: str
    energy_label: str
    concurrency: int | None
    load: str  # e.g. "concurrency 4" or "poisson 2/s"
    n: int  # items (the unit of accuracy; see _columns for an item asked more than once)
    n_requests: int
    n_correct: int  # correct requests
    n_ok: int
    n_error: int
    n_timeout: int
    n_truncated: int
    accuracy: Estimate
    energy_per_query_j: Estimate
    net_energy_per_query_j: Estimate
    joules_per_correct: Estimate
    correct_per_kj: Estimate
    avg_power_w: Estimate
    ipw: Estimate
    avg_power_per_query_w: Estimate  # the reference harness's mean(E_i / L_i)
    ipw_per_query: Estimate  # accuracy / mean(E_i / L_i)
    requests_per_s: float | None
    tokens_per_s: float | None
    goodput_rps: float | None  # correct and within the SLO, per second of the window
    slo: str
    error_rate: float
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    e2e_p50_s: float | None
    e2e_p90_s: float | None
    e2e_p99_s: float | None
    tpot_p50_s: float | None
    tpot_p90_s: float | None
    tpot_p99_s: float | None
    itl_p50_s: float | None
    itl_p90_s: float | None
    itl_p99_s: float | None
    send_lag_p99_s: float | None  # t_sent − t_scheduled: a client falling behind shows here
    metered_total_j: float
    unattributed_j: float
    idle_power_w: float
    energy_uncertainty: str = ""
    energy_band: str = ""
    domains: list[DomainSummary] = field(default_factory=list)
    bootstrap: str = ""
    kernel_version: int = KERNEL_VERSION
    requests_sha256: str = ""  # what it was computed from (set by whoever stores it)


# --- latency, derived once ------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Per-request latency from the recorded times (arrays; NaN where undefined)."""

    ttft_s: np.ndarray
    e2e_s: np.ndarray
    tpot_s: np.ndarray


def latency(
    t_sent: np.ndarray, t_first_token: np.ndarray, t_done: np.ndarray, completion_tokens: np.ndarray
) -> Latency:
    """TTFT = first token − sent; e2e = done − sent; TPOT = (done − first token) / (tokens − 1)
    for requests with more than one token (vLLM's definition; docs/metrics.md compares it with
    GuideLLM's)."""
    t_sent = np.asarray(t_sent, dtype=float)
    first = np.asarray(t_first_token, dtype=float)
    done = np.asarray(t_done, dtype=float)
    tokens = np.asarray(completion_tokens, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(tokens > 1, (done - first) / (tokens - 1), np.nan)
    return Latency(ttft_s=first - t_sent, e2e_s=done - t_sent, tpot_s=tpot)


def inter_token_gaps(chunk_times: Sequence[float]) -> list[float]:
    """Gaps between consecutive streamed chunks (inter-token latency), in seconds."""
    return np.diff(np.asarray(chunk_times, dtype=float)).tolist() if len(chunk_times) > 1 else []


def percentiles(x: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Percentiles (numpy's linear interpolation) of the defined values; None when none are."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return [None] * len(qs)
    return [float(v) for v in np.percentile(x, list(qs))]


def median_interval(values: np.ndarray, *, resamples: int, seed: int) -> Estimate:
    """The median with a 95% bootstrap interval over the values (e.g. completed requests)."""
    xs = np.asarray(values, dtype=float)
    xs = xs[~np.isnan(xs)]
    if xs.size == 0:
        return Estimate(None)
    point = float(np.percentile(xs, 50))
    if xs.size < 2:
        return Estimate(point, why="one value")
    idx = np.random.default_rng(seed).integers(0, xs.size, size=(resamples, xs.size))
    return estimate(point, np.median(xs[idx], axis=1))


def wilson_interval(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of k successes in n (for small per-domain counts)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; floating point would leave a residue.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points no other point beats — none has lower-or-equal
    cost and higher-or-equal accuracy with one of them strictly better — sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    frontier: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            frontier.append(i)
            best = points[i][1]
    return frontier


# --- every per-run figure, for many runs at once --------------------------------------------


@dataclass(frozen=True)
class _Boot:
    """A run's resampled sums over items."""

    n: np.ndarray
    c: np.ndarray
    e: np.ndarray
    e_net: np.ndarray
    lat: np.ndarray
    p: np.ndarray


_PER_RUN = 6  # columns per run in the joint bootstrap: answered, c, e, e_net, lat, p


def summarize(
    cols: RequestColumns,
    contexts: Sequence[RunContext],
    *,
    resamples: int = 1000,
    seed: int = 0,
    matrix: ItemMatrix | None = None,
    extra_columns: np.ndarray | None = None,
) -> tuple[list[RunSummary], np.ndarray | None]:
    """Every per-run figure for all runs in `cols`, with intervals from one paired bootstrap
    over their items. `extra_columns` (n_items × k) ride along in the same resamples (routing
    uses them); their resampled sums are returned as the second value."""
    g = len(cols.groups)
    if len(contexts) != g:
        raise ValueError("one RunContext per run")
    m = matrix or item_matrix(cols)
    answered = m.answered.astype(np.float64)
    blocks = [answered, m.correct, m.energy_j, m.energy_net_j, m.e2e_s, m.power_w]
    if extra_columns is not None:
        blocks.append(np.asarray(extra_columns).reshape(len(cols.items), -1))
    sums = bootstrap_sums(blocks, resamples, seed) if len(cols.items) and resamples else None
    order, bounds = _group_slices(cols.group, g)
    summaries = []
    for j, ctx in enumerate(contexts):
        boot = None
        if sums is not None:
            boot = _Boot(*(sums[:, k * g + j] for k in range(_PER_RUN)))
        rows = order[bounds[j] : bounds[j + 1]]
        summaries.append(_summarize_run(cols, m, j, rows, ctx, boot, resamples, seed))
    extra = sums[:, _PER_RUN * g :] if sums is not None and extra_columns is not None else None
    return summaries, extra


def _group_slices(group: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ordered by run, and where each run's rows start."""
    if group.size == 0 or bool(np.all(group[1:] >= group[:-1])):
        order = np.arange(group.size)
    else:
        order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=g)
    return order, np.concatenate([[0], np.cumsum(counts)])


def _summarize_run(
    cols: RequestColumns,
    m: ItemMatrix,
    j: int,
    rows: np.ndarray,
    ctx: RunContext,
    b: _Boot | None,
    resamples: int,
    seed: int,
) -> RunSummary:
    asked = m.answered[:, j]
    n = int(asked.sum())
    c_sum = float(m.correct[asked, j].sum())
    e_sum = float(m.energy_j[asked, j].sum())
    e_net_sum = float(m.energy_net_j[asked, j].sum())
    lat_sum = float(m.e2e_s[asked, j].sum())
    p_mean = float(m.power_w[asked, j].mean()) if n else None

    def est(point: float | None, stat: np.ndarray | None, why: str = "") -> Estimate:
        return estimate(point, stat if b is not None else None, why=why)

    few = f"too few correct answers ({round(c_sum)}) for an interval"
    accuracy = est(c_sum / n if n else None, b and ratio(b.c, b.n))
    e_query = est(e_sum / n if n else None, b and ratio(b.e, b.n))
    e_net_query = est(e_net_sum / n if n else None, b and ratio(b.e_net, b.n))
    j_correct = est(e_sum / c_sum if c_sum else None, b and ratio(b.e, b.c), few)
    ipj = est(c_sum / e_sum * 1000 if e_sum else None, b and ratio(b.c, b.e) * 1000)
    per_query_power = est(p_mean, b and ratio(b.p, b.n))
    acc_boot = None if b is None else ratio(b.c, b.n)
    ipw_per_query = est(
        accuracy.value / p_mean if accuracy.value is not None and p_mean else None,
        None if b is None else ratio(acc_boot, ratio(b.p, b.n)),
    )
    if ctx.concurrency == 1:
        # One request at a time: P = ΣE / ΣL, resampled with the items.
        p_point = e_sum / lat_sum if lat_sum else None
        power = est(p_point, b and ratio(b.e, b.lat))
        ipw = est(
            accuracy.value / p_point if p_point and accuracy.value is not None else None,
            None if b is None else ratio(acc_boot, ratio(b.e, b.lat)),
        )
    else:
        power, ipw = _window_power(ctx.energy, accuracy.value, acc_boot, resamples, seed)

    status = cols.status[rows]
    counts = np.bincount(status, minlength=len(STATUSES)) if rows.size else np.zeros(4, int)
    completed = (status == STATUS_OK) | (status == STATUS_TRUNCATED)
    done_rows = rows[completed]
    lat = latency(cols.t_sent[rows], cols.t_first_token[rows], cols.t_done[rows],
                  cols.completion_tokens[rows])  # fmt: skip
    correct_rows = cols.correct[rows]
    good = correct_rows.copy()
    if ctx.slo.ttft_s is not None:
        good &= ~np.isnan(lat.ttft_s) & (lat.ttft_s <= ctx.slo.ttft_s)
    if ctx.slo.e2e_s is not None:
        good &= lat.e2e_s <= ctx.slo.e2e_s
    window = ctx.energy.window_s
    tokens = float(nz(cols.completion_tokens[done_rows]).sum())
    ttft_p = percentiles(lat.ttft_s[completed], (50, 90, 99))
    e2e_p = percentiles(lat.e2e_s[completed], (50, 90, 99))
    tpot_p = percentiles(lat.tpot_s[completed], (50, 90, 99))
    itl_p = percentiles(_itl_gaps(cols, done_rows), (50, 90, 99))
    lag = percentiles(cols.t_sent[rows] - cols.t_scheduled[rows], (99,))
    n_requests = int(rows.size)
    return RunSummary(
        run_id=ctx.run_id,
        model=ctx.model,
        workload=ctx.workload,
        energy_label=ctx.energy.label,
        concurrency=ctx.concurrency,
        load=ctx.load or (f"concurrency {ctx.concurrency}" if ctx.concurrency else "open loop"),
        n=n,
        n_requests=n_requests,
        n_correct=int(correct_rows.sum()),
        n_ok=int(counts[STATUS_OK]),
        n_error=int(counts[STATUS_ERROR]),
        n_timeout=int(counts[STATUS_TIMEOUT]),
        n_truncated=int(counts[STATUS_TRUNCATED]),
        accuracy=accuracy,
        energy_per_query_j=e_query,
        net_energy_per_query_j=e_net_query,
        joules_per_correct=j_correct,
        correct_per_kj=ipj,
        avg_power_w=power,
        ipw=ipw,
        avg_power_per_query_w=per_query_power,
        ipw_per_query=ipw_per_query,
        requests_per_s=n_requests / window if window else None,
        tokens_per_s=tokens / window if window else None,
        goodput_rps=float(good.sum()) / window if window else None,
        slo=ctx.slo.describe(),
        error_rate=(
            float(counts[STATUS_ERROR] + counts[STATUS_TIMEOUT]) / n_requests if n_requests else 0.0
        ),
        ttft_p50_s=ttft_p[0],
        ttft_p90_s=ttft_p[1],
        ttft_p99_s=ttft_p[2],
        e2e_p50_s=e2e_p[0],
        e2e_p90_s=e2e_p[1],
        e2e_p99_s=e2e_p[2],
        tpot_p50_s=tpot_p[0],
        tpot_p90_s=tpot_p[1],
        tpot_p99_s=tpot_p[2],
        itl_p50_s=itl_p[0],
        itl_p90_s=itl_p[1],
        itl_p99_s=itl_p[2],
        send_lag_p99_s=lag[0],
        metered_total_j=ctx.energy.metered_total_j,
        unattributed_j=ctx.energy.unattributed_j,
        idle_power_w=ctx.energy.idle_power_w,
        energy_uncertainty=ctx.energy.uncertainty,
        energy_band=ctx.energy.band,
        domains=_domains(cols, m, j),
        bootstrap=f"95% paired bootstrap over items, {resamples} resamples, seed {seed}",
    )


def _window_power(
    energy: EnergyTotals,
    accuracy: float | None,
    acc_boot: np.ndarray | None,
    resamples: int,
    seed: int,
) -> tuple[Estimate, Estimate]:
    """Average power under concurrency: the metered window's energy over its length, with a
    block bootstrap over its time blocks; IPW combines it with the items' accuracy resamples."""
    p_point = energy.window_j / energy.window_s if energy.window_s else None
    ipw_point = accuracy / p_point if p_point and accuracy is not None else None
    blocks = np.asarray(energy.window_blocks, dtype=float).reshape(-1, 2)
    if p_point is None or len(blocks) < 5 or acc_boot is None:
        why = "too few time blocks for a block bootstrap" if p_point else ""
        return Estimate(p_point, why=why), Estimate(ipw_point, why=why)
    sums = block_resample_sums(blocks, resamples, seed + 1)
    p_boot = ratio(sums[:, 1], sums[:, 0])
    return estimate(p_point, p_boot), estimate(ipw_point, ratio(acc_boot, p_boot))


def _itl_gaps(cols: RequestColumns, rows: np.ndarray) -> np.ndarray:
    if cols.itl_values is None or cols.itl_offsets is None or rows.size == 0:
        return np.zeros(0)
    starts, stops = cols.itl_offsets[rows], cols.itl_offsets[rows + 1]
    lengths = stops - starts
    if lengths.sum() == 0:
        return np.zeros(0)
    # Gather every row's slice without a Python loop: a running index per row segment.
    idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return cols.itl_values[idx + np.arange(lengths.sum())]


def item_domains(cols: RequestColumns) -> np.ndarray:
    """Each item's domain code (the domain of its first row)."""
    out = np.zeros(len(cols.items), dtype=np.int32)
    out[cols.item[::-1]] = cols.domain[::-1]
    return out


def _domains(cols: RequestColumns, m: ItemMatrix, j: int) -> list[DomainSummary]:
    asked = m.answered[:, j]
    dom = item_domains(cols)[asked]
    k = len(cols.domains)
    n = np.bincount(dom, minlength=k)
    correct = np.bincount(dom, weights=m.correct[asked, j], minlength=k)
    energy = np.bincount(dom, weights=m.energy_j[asked, j], minlength=k)
    out = []
    for d in sorted(range(k), key=lambda d: cols.domains[d]):
        if n[d] == 0:
            continue
        low, high = wilson_interval(float(correct[d]), int(n[d]))
        out.append(
            DomainSummary(
                domain=cols.domains[d],
                n=int(n[d]),
                accuracy=Estimate(float(correct[d]) / int(n[d]), low, high),
                energy_per_query_j=float(energy[d]) / int(n[d]),
            )
        )
    return out


__all__ = [
    "CI_LEVEL",
    "KERNEL_VERSION",
    "DomainSummary",
    "Estimate",
    "ItemMatrix",
    "Latency",
    "RequestColumns",
    "RunContext",
    "RunSummary",
    "Slo",
    "estimate",
    "inter_token_gaps",
    "interval",
    "item_domains",
    "item_matrix",
    "latency",
    "median_interval",
    "pareto_frontier",
    "percentiles",
    "summarize",
    "wilson_interval",
]
