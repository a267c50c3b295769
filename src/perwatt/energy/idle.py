"""The idle baseline: mean power with the model loaded and no request in flight."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perwatt.energy.timeline import DomainSeries, PowerTimeline


@dataclass(frozen=True)
class IdleBaseline:
    """Mean idle power per domain over [t_start, t_end], and its spread across sub-windows.

    `spread_w` is the sample standard deviation (ddof=1) of the mean power of `windows` equal
    sub-windows: how steady idle power was, hence how far the net figures can be trusted.
    `total_spread_w` is the same for the sum of all domains. [t_start, t_end] is the requested
    window clipped to the sampled range; `duration_s` is its length.
    """

    t_start: float
    t_end: float
    power_w: dict[str, float] = field(default_factory=dict)
    spread_w: dict[str, float] = field(default_factory=dict)
    total_spread_w: float = 0.0
    windows: int = 0

    @property
    def duration_s(self) -> float:
        """Length of the baseline window (0 when nothing was sampled in it)."""
        return max(0.0, self.t_end - self.t_start)

    @property
    def total_power_w(self) -> float:
        """Idle power summed over domains."""
        return float(sum(self.power_w.values()))


def _window_powers(series: DomainSeries, edges: np.ndarray) -> np.ndarray:
    return np.diff(series.at(edges)) / np.diff(edges)


def _spread(powers: np.ndarray) -> float:
    return float(np.std(powers, ddof=1)) if len(powers) > 1 else 0.0


def measure_idle(timeline: PowerTimeline, t0: float, t1: float, windows: int = 5) -> IdleBaseline:
    """Idle power per domain over [t0, t1] from the timeline (the runner sleeps in that window).

    The window is clipped to the sampled range; an empty or unsampled window gives a baseline
    with no domains and zero duration, which callers treat as "no baseline".
    """
    if windows < 1:
        raise ValueError(f"windows must be ≥ 1, got {windows}")
    span = timeline.span()
    if span is None:
        return IdleBaseline(t0, t0)
    start, end = max(t0, span[0]), min(t1, span[1])
    if end <= start:
        return IdleBaseline(start, start)
    edges = np.linspace(start, end, windows + 1)
    power: dict[str, float] = {}
    spread: dict[str, float] = {}
    for name, series in timeline.domains.items():
        if len(series.t) < 2:
            continue
        power[name] = series.energy_between(start, end) / (end - start)
        spread[name] = _spread(_window_powers(series, edges))
    combined = timeline.combined()
    total_spread = _spread(_window_powers(combined, edges)) if len(combined.t) > 1 else 0.0
    return IdleBaseline(start, end, power, spread, total_spread, windows)
