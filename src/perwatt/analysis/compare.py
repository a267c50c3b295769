"""Compare two runs on the items both answered, and give a claim an independent verdict.

Paired bootstrap: each resample draws shared items with replacement and keeps, for every item
drawn, both runs' answers and energies together, so item difficulty cancels out of the
comparison. Accuracy is compared as a difference (A − B); J/correct, correct answers per kJ
(IPJ) and energy per query as ratios (A / B).

A claim (`--claim 2x`) says A is that many times better than B on a metric. Its *advantage*
F is defined so that bigger is always better for A:

- j_per_correct (default): F = J/correct of B ÷ J/correct of A ("2× fewer joules per correct
  answer"); on the same items this equals the IPJ ratio A ÷ B, so `ipj` gives the same F;
- energy_per_query: F = J/query of B ÷ J/query of A;
- accuracy: F = accuracy of A ÷ accuracy of B, or, as `+5pp`, the difference A − B.

A factor claim k holds when F ≥ k, allowing the stated margin for rounding: with margin m the
bar is k / (1 + m). Intervals are BCa (bias-corrected and accelerated: better small-sample
coverage than the percentile interval), from a paired bootstrap over the shared items. The
verdict at 95%: **supported** when the whole interval of F clears the bar, **not supported**
when the whole interval falls short of it, **inconclusive** otherwise — also when the interval's
edge and the bar agree to the three figures shown, so no verdict hangs on rounding. An
inconclusive verdict comes with a power calculation: the shared items that would give an 80%
chance of a supported (or, for an effect below the bar, not-supported) verdict if the measured
effect and its per-item spread hold.

Items asked more than once count with the mean of their attempts (the kernel's rule), so A's
and B's figures here are those of `perwatt report` when both runs answered the same items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perwatt.analysis._bootstrap import (
    Estimate,
    bca_interval,
    bootstrap_method,
    bootstrap_sums,
    ratio,
)
from perwatt.analysis._columns import KERNEL_COLUMNS, RequestColumns, item_matrix
from perwatt.errors import PerwattError
from perwatt.store import RunData

# One-sided 80% power on top of the two-sided 95% interval: z_{0.975} + z_{0.80}.
_Z_POWER = 1.959964 + 0.841621

METRICS = ("j_per_correct", "ipj", "accuracy", "energy_per_query")
DEFAULT_MARGIN = 0.05
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Side:
    """One run's figures on the shared items."""

    run_id: str
    path: str
    model: str
    energy_label: str
    energy_band: str
    items_answered: int
    accuracy: float
    energy_per_query_j: float
    joules_per_correct: float | None
    correct_per_kj: float | None


@dataclass(frozen=True)
class MetricComparison:
    """A against B on one metric, with its 95% paired-bootstrap interval and verdict.

    `value` is A − B for accuracy and A / B otherwise. The verdict is "no difference" when the
    whole interval lies within the margin (±margin for the difference, [1/(1+m), 1+m] for a
    ratio), "A better"/"B better" when it excludes no change on that side, else "inconclusive".
    """

    metric: str
    kind: str  # "difference" or "ratio"
    better: str  # "higher" or "lower": which way is better for this metric
    a: float | None
    b: float | None
    value: Estimate
    verdict: str


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim about A over B, judged at 95%."""

    claim: str
    metric: str
    kind: str  # "factor" or "difference"
    target: float
    bar: float  # what the interval must clear: target / (1 + margin) for a factor
    advantage: Estimate  # F (factor) or A − B (difference)
    verdict: str  # "supported", "not supported" or "inconclusive"
    items_needed: int | None
    explanation: str


@dataclass(frozen=True)
class Comparison:
    """Everything `perwatt compare` prints and writes."""

    a: Side
    b: Side
    n_shared: int
    only_a: int
    only_b: int
    energy_labels_differ: bool
    bootstrap: str
    resamples: int
    seed: int
    margin: float
    metrics: list[MetricComparison]
    claim: ClaimVerdict | None
    extra: ExtraSolved
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExtraSolved:
    """What A's extra solved items cost over B's, on the shared items: what single-turn misses
    when A is a retry or tool run of B's model and items (`perwatt compare RETRY SINGLE`).

    `extra_correct` is A's correct answers minus B's (an item counts its share of correct
    attempts); `extra_energy_j` A's energy minus B's; `j_per_extra_correct` their ratio, the
    joules A spends per item it solves beyond B — undefined (None) unless A solves more, and
    without an interval when too many resamples have A solving no more than B.
    """

    extra_correct: float
    extra_energy_j: float
    j_per_extra_correct: Estimate


@dataclass(frozen=True)
class ParsedClaim:
    kind: str
    target: float


def parse_claim(text: str, metric: str) -> ParsedClaim:
    """`2x`, `2×`, `1.5` (a factor) or, for accuracy, `+5pp` (a difference in points)."""
    if metric not in METRICS:
        raise PerwattError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    factor = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[x×]?\s*", text)
    if factor:
        value = float(factor.group(1))
        if value <= 0:
            raise PerwattError(f"a claimed factor must be positive, not {text!r}")
        return ParsedClaim("factor", value)
    points = re.fullmatch(r"\s*([+-]?\d+(?:\.\d+)?)\s*pp\s*", text)
    if points:
        if metric != "accuracy":
            raise PerwattError("a claim in percentage points (pp) needs --metric accuracy")
        return ParsedClaim("difference", float(points.group(1)) / 100)
    raise PerwattError(f"cannot read the claim {text!r}: write a factor like 2x, or +5pp")


def compare_runs(
    a: RunData,
    b: RunData,
    *,
    claim: str | None = None,
    metric: str = "j_per_correct",
    margin: float = DEFAULT_MARGIN,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare run A with run B on their shared items; judge `claim` if given."""
    if metric not in METRICS:
        raise PerwattError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if not (0 <= margin < 1):
        raise PerwattError(f"--margin must lie in [0, 1), not {margin}")
    if resamples < 100:
        raise PerwattError("--resamples must be at least 100 for a 95% interval")
    parsed = parse_claim(claim, metric) if claim is not None else None

    # Only the columns the kernel reads (a third of a requests file), as report and route do.
    tables = [run.answer_columns(KERNEL_COLUMNS) for run in (a, b)]
    cols = RequestColumns.from_tables(tables, ["A", "B"])
    m = item_matrix(cols)
    answered = m.answered
    shared = np.flatnonzero(answered.all(axis=1))
    if shared.size == 0:
        raise PerwattError(
            f"runs {a.run_id} and {b.run_id} share no item: a paired comparison needs the same "
            "items (same workload, seed and limit)"
        )
    # Per shared item: each run's share of correct attempts and mean energy per attempt.
    n = shared.size
    columns = np.column_stack(
        [np.ones(n), m.correct[shared, 0], m.energy_j[shared, 0], m.correct[shared, 1],
         m.energy_j[shared, 1]]
    )  # fmt: skip
    sums = bootstrap_sums(columns, resamples, seed)
    totals = columns.sum(axis=0)
    # Leave-one-out sums, for BCa's acceleration.
    jack = totals[None, :] - columns
    t_ca, t_ea, t_cb, t_eb = (float(x) for x in totals[1:])

    side_a = _side(a, int(answered[:, 0].sum()), t_ca, t_ea, n)
    side_b = _side(b, int(answered[:, 1].sum()), t_cb, t_eb, n)
    better = {"accuracy": "higher", "j_per_correct": "lower", "ipj": "higher",
              "energy_per_query": "lower"}  # fmt: skip
    values = {
        "accuracy": (side_a.accuracy, side_b.accuracy),
        "j_per_correct": (side_a.joules_per_correct, side_b.joules_per_correct),
        "ipj": (side_a.correct_per_kj, side_b.correct_per_kj),
        "energy_per_query": (side_a.energy_per_query_j, side_b.energy_per_query_j),
    }
    metrics = []
    for name in METRICS:
        kind = "difference" if name == "accuracy" else "ratio"
        est = _bca(_STATS[name], totals, sums, jack)
        metrics.append(
            MetricComparison(
                metric=name,
                kind=kind,
                better=better[name],
                a=values[name][0],
                b=values[name][1],
                value=est,
                verdict=_metric_verdict(est, kind, better[name], margin),
            )
        )

    verdict = None
    if parsed is not None and claim is not None:
        # The advantage F: bigger is better for A, whatever the metric.
        if parsed.kind == "difference":
            stat = _STATS["accuracy"]
        elif metric == "accuracy":
            stat = _accuracy_factor
        elif metric == "ipj":
            stat = _STATS["ipj"]
        else:
            stat = _inverse(_STATS[metric])
        adv = _bca(stat, totals, sums, jack)
        verdict = _judge(claim, metric, parsed, adv, margin, n, stat(sums))

    extra = ExtraSolved(
        extra_correct=t_ca - t_cb,
        extra_energy_j=t_ea - t_eb,
        j_per_extra_correct=_bca(_j_per_extra_correct, totals, sums, jack),
    )
    labels_differ = side_a.energy_label != side_b.energy_label
    notes = []
    if labels_differ:
        notes.append(
            f"ENERGY LABELS DIFFER: A is {side_a.energy_label}, B is {side_b.energy_label}; "
            "energy ratios compare an estimate with a measurement"
        )
    only_a = int((answered[:, 0] & ~answered[:, 1]).sum())
    only_b = int((answered[:, 1] & ~answered[:, 0]).sum())
    if only_a or only_b:
        notes.append(
            f"{only_a} items only A answered and {only_b} only B answered are left out; "
            f"{n} items are shared"
        )
    if a.path.resolve() == b.path.resolve():
        notes.append("A and B are the same run")
    return Comparison(
        a=side_a,
        b=side_b,
        n_shared=n,
        only_a=only_a,
        only_b=only_b,
        energy_labels_differ=labels_differ,
        bootstrap=bootstrap_method(n),
        resamples=resamples,
        seed=seed,
        margin=margin,
        metrics=metrics,
        claim=verdict,
        extra=extra,
        notes=notes,
    )


def _acc_diff(s: np.ndarray) -> np.ndarray:
    return ratio(s[..., 1] - s[..., 3], s[..., 0])


def _jpc_ratio(s: np.ndarray) -> np.ndarray:
    return ratio(ratio(s[..., 2], s[..., 1]), ratio(s[..., 4], s[..., 3]))


def _ipj_ratio(s: np.ndarray) -> np.ndarray:
    return ratio(ratio(s[..., 1], s[..., 2]), ratio(s[..., 3], s[..., 4]))


def _epq_ratio(s: np.ndarray) -> np.ndarray:
    return ratio(s[..., 2], s[..., 4])


def _j_per_extra_correct(s: np.ndarray) -> np.ndarray:
    # Defined only where A solves more than B: a ratio over a difference that may cross zero
    # would otherwise change sign, and a negative "cost per extra item" means nothing.
    extra = s[..., 1] - s[..., 3]
    return np.where(extra > 0, ratio(s[..., 2] - s[..., 4], np.where(extra > 0, extra, 1)), np.nan)


def _accuracy_factor(s: np.ndarray) -> np.ndarray:
    return ratio(s[..., 1], s[..., 3])


def _inverse(stat: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda s: ratio(np.ones_like(s[..., 0]), stat(s))


# Each statistic is a function of the summed columns (items, correct A, energy A, correct B,
# energy B): applied to the totals it is the point value, to resampled sums the replicates, to
# leave-one-out sums the jackknife.
_STATS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": _acc_diff,
    "j_per_correct": _jpc_ratio,
    "ipj": _ipj_ratio,
    "energy_per_query": _epq_ratio,
}


def _bca(
    stat: Callable[[np.ndarray], np.ndarray], totals: np.ndarray, sums: np.ndarray,
    jack: np.ndarray,
) -> Estimate:  # fmt: skip
    point = float(stat(totals))
    if not math.isfinite(point):
        return Estimate(None)
    replicates = stat(sums)
    spread = np.nanmax(replicates) - np.nanmin(replicates) if np.isfinite(replicates).any() else 1
    if spread == 0:  # every resample agrees (e.g. a run against itself): a degenerate interval
        return Estimate(point, point, point)
    bounds = bca_interval(point, replicates, stat(jack))
    if bounds is None:
        return Estimate(point, why="undefined in too many resamples for an interval")
    return Estimate(point, *bounds)


def _side(run: RunData, answered: int, correct: float, energy: float, n: int) -> Side:
    return Side(
        run_id=run.run_id,
        path=str(run.path),
        model=run.model,
        energy_label=run.manifest.energy.label,
        energy_band=run.manifest.energy.totals.band,
        items_answered=answered,
        accuracy=correct / n,
        energy_per_query_j=energy / n,
        joules_per_correct=energy / correct if correct else None,
        correct_per_kj=correct / energy * 1000 if energy else None,
    )


def _metric_verdict(est: Estimate, kind: str, better: str, margin: float) -> str:
    if est.low is None or est.high is None:
        return "inconclusive"
    if kind == "difference":
        null, lo_band, hi_band = 0.0, -margin, margin
    else:
        null, lo_band, hi_band = 1.0, 1 / (1 + margin), 1 + margin
    if lo_band <= est.low and est.high <= hi_band:
        return "no difference"
    a_side_high = better == "higher"
    if est.low > null:
        return "A better" if a_side_high else "B better"
    if est.high < null:
        return "B better" if a_side_high else "A better"
    return "inconclusive"


def _judge(
    text: str, metric: str, parsed: ParsedClaim, adv: Estimate, margin: float, n: int,
    replicates: np.ndarray,
) -> ClaimVerdict:  # fmt: skip
    factor = parsed.kind == "factor"
    bar = parsed.target / (1 + margin) if factor else parsed.target
    what = {
        "j_per_correct": "joules per correct answer (fewer is better)",
        "ipj": "correct answers per joule",
        "energy_per_query": "joules per query (fewer is better)",
        "accuracy": "accuracy",
    }[metric]
    said = (
        f"A beats B by at least {parsed.target:g}× on {what}"
        if factor
        else f"A's accuracy is at least {parsed.target * 100:+g} points over B's"
    )
    if adv.value is None or adv.low is None or adv.high is None:
        return ClaimVerdict(text, metric, parsed.kind, parsed.target, bar, adv, "inconclusive",
                            None, f"{said}: too few correct answers for an interval")  # fmt: skip
    scale = 1.0 if factor else 100.0  # differences are shown in points
    if adv.low >= bar and not _same_shown(adv.low * scale, bar * scale):
        verdict = "supported"
    elif adv.high < bar and not _same_shown(adv.high * scale, bar * scale):
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    needed = None
    if verdict == "inconclusive":
        needed = _items_needed(adv, bar, n, replicates, log=factor)
    if factor:
        bar_text = f"{bar:.3g}× (the claim less a {margin:.0%} margin)"
        span = f"{adv.value:.3g}× [{adv.low:.3g}, {adv.high:.3g}]"
    else:
        bar_text = f"{bar * 100:+.3g} points"
        span = f"{adv.value * 100:+.3g} points [{adv.low * 100:+.3g}, {adv.high * 100:+.3g}]"
    explanation = f"{said}: measured {span} (95%, BCa) against a bar of {bar_text}"
    if verdict == "inconclusive":
        side = "a supported" if adv.value > bar else "a not-supported"
        explanation += (
            f"; about {needed:,} shared items would give an 80% chance of {side} verdict if "
            "the measured effect holds"
            if needed
            else "; the estimate sits on the bar, so no sample size settles it"
        )
    return ClaimVerdict(text, metric, parsed.kind, parsed.target, bar, adv, verdict, needed,
                        explanation)  # fmt: skip


def _same_shown(x: float, bar: float) -> bool:
    """Whether x and the bar print alike at three significant figures: a verdict must not hang
    on a difference the table cannot show."""
    return f"{x:.3g}" == f"{bar:.3g}"


def _items_needed(
    adv: Estimate, bar: float, n: int, replicates: np.ndarray, *, log: bool
) -> int | None:
    """A power calculation: the shared items that give an 80% chance that the 95% interval
    clears the bar (or, for an effect below it, stays under it), were the measured effect θ and
    the per-item spread to hold. With the bootstrap standard error se at n items (on the log
    scale for a factor), the error at N items is se·√(n/N), and the chance is about
    Φ(|θ − bar| / (se·√(n/N)) − z₀.₉₇₅); 80% needs N = n·(se·(z₀.₉₇₅ + z₀.₈)/|θ − bar|)²."""
    assert adv.value is not None
    finite = replicates[np.isfinite(replicates)]
    if log:
        finite = finite[finite > 0]
        if adv.value <= 0 or bar <= 0 or finite.size < 2:
            return None
        theta, target, values = math.log(adv.value), math.log(bar), np.log(finite)
    else:
        theta, target, values = adv.value, bar, finite
    if values.size < 2:
        return None
    se = float(np.std(values, ddof=1))
    gap = abs(theta - target)
    if gap < 1e-12 or se == 0:
        return None
    return max(n + 1, math.ceil(n * (se * _Z_POWER / gap) ** 2))
