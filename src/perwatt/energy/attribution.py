"""Sharing a run's metered energy among its requests (DESIGN.md, "Attribution").

Power is taken as constant inside each sample interval. The timeline is cut at every sample
time and at every request start and end into elementary slices; each slice's energy goes to the
requests active in it (a request [t_sent, t_done) is active in the slices it covers), in equal
shares or in proportion to per-request weights (token-weighted attribution). A slice with no
active request is unattributed. Conservation is exact up to float rounding:
Σ gross + unattributed = metered total.

**Phases.** Given each request's first-token time, its gross energy is split there into prefill
(t_sent → t_first_token) and decode (t_first_token → t_done): the split time is one more
boundary point, each phase is the sum of the request's shares over the slices on its side, and
the gross energy is *defined* as prefill + decode, so the two add up to it exactly (bit for
bit, not merely up to rounding). A slice's sharing does not depend on phases: a request decoding
beside one in prefill gets the same share of that slice as without the split. A request with no
first token (it failed before any token) has all its energy in prefill, and a first-token time
outside [t_sent, t_done] is moved to the nearer end.

Net energy removes the idle power's share of each slice by the same rule, so a request's net
energy is what it cost above an idle, loaded server. On a noisy estimate, or when idle power is
above the power actually drawn while a request ran, net energy is negative; it is reported as
is, never clamped, so that totals over requests stay unbiased.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from perwatt.energy.timeline import DomainSeries, PowerTimeline

# Weights are turned into integers whose sum stays below 2**52: every running sum of active
# weight is then exact in float64, so a slice is never shared among requests that have ended
# and shares add up to the slice. Integer weights (token counts) are used as they are.
_WEIGHT_SUM_LIMIT = float(2**52)


@dataclass(frozen=True)
class Attribution:
    """Per-request energy (arrays in the order of the intervals given) and what was left over."""

    gross_j: np.ndarray  # energy attributed to each request
    net_j: np.ndarray  # gross minus the idle power's share of the same slices (may be < 0)
    unattributed_j: float  # energy in slices with no request active
    total_j: float  # metered energy from the first to the last sample
    active_j: float  # energy in slices with at least one request active
    active_s: float  # time with at least one request active (within the sampled range)
    window_s: float  # first request start to last request end (as given, not clipped)
    clipped_mask: np.ndarray  # requests that reached outside the sampled range (clipped to it)
    # With `splits`: gross split at the first token; prefill_j + decode_j == gross_j exactly.
    prefill_j: np.ndarray | None = None
    decode_j: np.ndarray | None = None

    @property
    def clipped(self) -> int:
        """How many requests were clipped to the sampled range."""
        return int(np.count_nonzero(self.clipped_mask))

    @property
    def idle_j(self) -> float:
        """The idle share removed from the requests in total (Σ gross - Σ net)."""
        return float(self.gross_j.sum() - self.net_j.sum())


def _integer_weights(weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"expected {n} weights, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("attribution weights must be finite and non-negative")
    total = float(w.sum())
    if total == 0.0 or (np.all(w == np.round(w)) and total <= _WEIGHT_SUM_LIMIT):
        return w
    # Fixed point relative to the sum: a weight's relative error is ≤ 2**-53 × Σw / w.
    scale = float(2.0 ** np.floor(np.log2((_WEIGHT_SUM_LIMIT - n) / total)))
    return np.round(w * scale)


def _prefix_sums(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums of `x` with a leading 0, as (high, low): high + low is about twice as precise.

    A request's share is a difference of two prefix sums; where per-weight shares span many
    orders of magnitude the plain float64 difference cancels badly. The rounding error of each
    step of the cumulative sum is recovered exactly (TwoSum) and accumulated alongside.
    """
    high = np.zeros(len(x) + 1)
    np.cumsum(x, out=high[1:])
    before, after = high[:-1], high[1:]
    x_seen = after - before
    error = (before - (after - x_seen)) + (x - x_seen)
    low = np.zeros(len(x) + 1)
    np.cumsum(error, out=low[1:])
    return high, low


def _span_summer(x: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function giving Σ x[i0[k]:i1[k]] for every k, from compensated prefix sums of `x`
    (computed once, however many spans are asked for)."""
    high, low = _prefix_sums(x)

    def spans(i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
        return (high[i1] - high[i0]) + (low[i1] - low[i0])

    return spans


def _split_times(
    splits: Sequence[float] | np.ndarray, n: int, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Each request's phase boundary within its (clipped) interval; NaN (no first token) → end."""
    s = np.asarray(splits, dtype=float)
    if s.shape != (n,):
        raise ValueError(f"expected {n} split times, got shape {s.shape}")
    if np.isinf(s).any():
        raise ValueError("split times must be finite (NaN for a request with no first token)")
    return np.clip(np.where(np.isnan(s), ends, s), starts, ends)


def attribute(
    timeline: PowerTimeline | DomainSeries,
    intervals: Sequence[tuple[float, float]] | np.ndarray,
    idle_power_w: float = 0.0,
    weights: Sequence[float] | np.ndarray | None = None,
    splits: Sequence[float] | np.ndarray | None = None,
) -> Attribution:
    """Attribute the energy of `timeline` (all domains combined) to requests.

    `intervals` are the requests' (t_sent, t_done) on the timeline's clock. A request reaching
    outside the sampled range is clipped to it (flagged in `clipped_mask`); a zero-length request
    gets 0 J. With `weights`, a slice's energy is split among its active requests in proportion
    to their weights; in a slice where all active requests weigh 0 it is split equally, so the
    slice still counts as attributed. Integer weights (token counts) are used exactly; other
    weights are rounded to a fixed point of 2**-52 of their sum, so one below about 1e-16 of the
    sum counts as 0 (conservation holds regardless). With `splits` (each request's
    t_first_token, NaN for none), each request's gross energy is also split into `prefill_j`
    and `decode_j`, which add up to it exactly (module docstring). O((samples + requests) log)
    with numpy: about 0.1 s for 100k requests over 100k samples.
    """
    series = timeline.combined() if isinstance(timeline, PowerTimeline) else timeline
    spans = np.asarray(intervals, dtype=float)
    if spans.size == 0:
        spans = spans.reshape(0, 2)
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise ValueError(f"intervals must be (t_sent, t_done) pairs, got shape {spans.shape}")
    n = len(spans)
    if not np.isfinite(spans).all():
        raise ValueError("request times must be finite")
    if (spans[:, 1] < spans[:, 0]).any():
        raise ValueError("a request ends before it starts (t_done < t_sent)")
    q = np.ones(n) if weights is None else _integer_weights(weights, n)
    window = float(spans[:, 1].max() - spans[:, 0].min()) if n else 0.0

    if len(series.t) < 2:  # no sampled interval: nothing to share
        zeros = np.zeros(n)
        if splits is not None:
            _split_times(splits, n, spans[:, 0], spans[:, 1])  # the same checks
        phase = (zeros.copy(), zeros.copy()) if splits is not None else (None, None)
        return Attribution(zeros, zeros.copy(), 0.0, 0.0, 0.0, 0.0, window, np.ones(n, bool),
                           *phase)  # fmt: skip
    t_first, t_last = float(series.t[0]), float(series.t[-1])
    clipped = (spans[:, 0] < t_first) | (spans[:, 1] > t_last)
    starts = np.clip(spans[:, 0], t_first, t_last)
    ends = np.clip(spans[:, 1], t_first, t_last)
    split = None if splits is None else _split_times(splits, n, starts, ends)

    # Elementary slices between consecutive boundary points.
    cuts = [series.t, starts, ends] if split is None else [series.t, starts, ends, split]
    points = np.unique(np.concatenate(cuts))
    n_slices = len(points) - 1
    slice_j = np.diff(series.at(points))
    slice_s = np.diff(points)
    # Request i covers slices i0[i] .. i1[i]-1. Active count and active weight per slice: add at
    # the start point, remove at the end point, accumulate along the points (all exact integers).
    i0 = np.searchsorted(points, starts)
    i1 = np.searchsorted(points, ends)
    size = n_slices + 1
    active_n = np.cumsum(np.bincount(i0, minlength=size) - np.bincount(i1, minlength=size))[:-1]
    active_q = np.cumsum(
        np.bincount(i0, weights=q, minlength=size) - np.bincount(i1, weights=q, minlength=size)
    )[:-1]

    active = active_n > 0
    by_weight = active_q > 0
    equal = active & ~by_weight  # all active requests weigh 0
    safe_q = np.where(by_weight, active_q, 1.0)
    safe_n = np.where(equal, active_n, 1)

    def shares(per_slice: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """A function giving each request's share of a per-slice quantity over its slices
        a..b-1: by weight, or equal where all active requests weigh 0."""
        by_unit_weight = _span_summer(np.where(by_weight, per_slice / safe_q, 0.0))
        by_request = _span_summer(np.where(equal, per_slice / safe_n, 0.0))
        return lambda a, b: q * by_unit_weight(a, b) + by_request(a, b)

    energy_share = shares(slice_j)
    prefill = decode = None
    if split is None:
        gross = energy_share(i0, i1)
    else:
        im = np.searchsorted(points, split)
        prefill, decode = energy_share(i0, im), energy_share(im, i1)
        gross = prefill + decode  # the definition: the phases add up to it exactly
    net = gross - shares(idle_power_w * slice_s)(i0, i1) if idle_power_w else gross.copy()
    # A zero-length request has i0 == i1: its sums are exactly 0, with no division.
    return Attribution(
        gross_j=gross,
        net_j=net,
        unattributed_j=float(slice_j[~active].sum()),
        total_j=float(series.energy_j[-1] - series.energy_j[0]),
        active_j=float(slice_j[active].sum()),
        active_s=float(slice_s[active].sum()),
        window_s=window,
        clipped_mask=clipped,
        prefill_j=prefill,
        decode_j=decode,
    )
