"""The energy timeline: cumulative joules per domain over the run's clock.

Times are seconds since the run's start on the monotonic clock. Between two samples power is
taken as constant, so cumulative energy at any time is a linear interpolation of the samples.
Outside the sampled range no energy is known: queries there add nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TimelineRow:
    """One sample: cumulative joules of `domain` at time `t`; power over the preceding interval.

    `power_w` is None for a domain's first sample (no interval ends there), which Parquet stores
    as null rather than NaN so that SQL aggregates skip it.
    """

    t: float
    domain: str
    energy_j: float
    power_w: float | None
    source: str


@dataclass(frozen=True)
class TimelineAnomaly:
    """Something in a timeline a reader must know about: a gap, a negative delta, a bad time."""

    domain: str
    kind: str  # "gap" | "negative_delta" | "non_increasing_time"
    t_start: float
    t_end: float
    detail: str


@dataclass
class DomainSeries:
    """One domain's samples: times (s, increasing) and cumulative energy (J), with its label."""

    t: np.ndarray
    energy_j: np.ndarray
    source: str

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=float)
        self.energy_j = np.asarray(self.energy_j, dtype=float)
        if self.t.shape != self.energy_j.shape or self.t.ndim != 1:
            raise ValueError("t and energy_j must be 1-D arrays of the same length")

    def __len__(self) -> int:
        return len(self.t)

    def at(self, times: np.ndarray | float) -> np.ndarray:
        """Cumulative energy at arbitrary times, assuming constant power inside each interval."""
        return np.interp(times, self.t, self.energy_j)

    def total_j(self) -> float:
        """Energy from the first to the last sample."""
        return float(self.energy_j[-1] - self.energy_j[0]) if len(self.t) else 0.0

    def energy_between(self, t0: float, t1: float) -> float:
        """Energy over [t0, t1] (the part of it inside the sampled range)."""
        if len(self.t) == 0:
            return 0.0
        return float(self.at(t1) - self.at(t0))

    def power_w(self) -> np.ndarray:
        """Mean power over the interval ending at each sample; NaN for the first sample."""
        power = np.full(len(self.t), np.nan)
        if len(self.t) > 1:
            dt = np.diff(self.t)
            ok = dt > 0
            power[1:][ok] = np.diff(self.energy_j)[ok] / dt[ok]
        return power


def _anomaly(domain: str, kind: str, s: DomainSeries, i: int, detail: str) -> TimelineAnomaly:
    return TimelineAnomaly(domain, kind, float(s.t[i]), float(s.t[i + 1]), detail)


@dataclass
class PowerTimeline:
    """Cumulative energy per domain. Every energy question of a run is answered from here."""

    domains: dict[str, DomainSeries] = field(default_factory=dict)

    def sources(self) -> dict[str, str]:
        """Each domain's source label (e.g. {"cpu": "estimated:cputime"})."""
        return {name: s.source for name, s in self.domains.items()}

    def _series(self, domain: str | None) -> list[DomainSeries]:
        if domain is None:
            return [s for s in self.domains.values() if len(s.t)]
        if domain not in self.domains:
            raise KeyError(f"no energy domain {domain!r} (have {sorted(self.domains)})")
        return [self.domains[domain]]

    def span(self) -> tuple[float, float] | None:
        """First and last sample time over all domains, or None for an empty timeline."""
        series = self._series(None)
        if not series:
            return None
        return min(float(s.t[0]) for s in series), max(float(s.t[-1]) for s in series)

    def total_j(self, domain: str | None = None) -> float:
        """Energy from the first to the last sample (of one domain, or summed over all)."""
        return float(sum(s.total_j() for s in self._series(domain)))

    def energy_between(self, t0: float, t1: float, domain: str | None = None) -> float:
        """Energy over [t0, t1] (one domain, or summed), interpolating inside sample intervals."""
        return float(sum(s.energy_between(t0, t1) for s in self._series(domain)))

    def mean_power_w(self, t0: float, t1: float, domain: str | None = None) -> float:
        """Mean power over [t0, t1]: energy_between / (t1 - t0); 0 for an empty window."""
        return self.energy_between(t0, t1, domain) / (t1 - t0) if t1 > t0 else 0.0

    def combined(self) -> DomainSeries:
        """All domains summed on the union of their sample times (identity for one domain).

        Each domain contributes its energy since its own first sample; before its first and
        after its last sample it contributes no power.
        """
        series = self._series(None)
        if not series:
            return DomainSeries(np.zeros(0), np.zeros(0), "none")
        if len(series) == 1:
            return series[0]
        grid = np.unique(np.concatenate([s.t for s in series]))
        energy = np.zeros(len(grid))
        for s in series:
            energy += s.at(grid) - s.energy_j[0]
        labels = list(dict.fromkeys(s.source for s in series))
        return DomainSeries(grid, energy, "+".join(labels))

    def coverage(self, intervals: Sequence[tuple[float, float]], max_gap_s: float) -> np.ndarray:
        """The share of each [t0, t1] that energy samples cover, in [0, 1].

        A stretch between two consecutive samples (of any domain) counts as covered when it is
        at most `max_gap_s` long; outside the first and last sample nothing is covered. A
        request of zero length counts as covered when it lies inside a covered stretch.
        """
        grid = np.unique(np.concatenate([s.t for s in self._series(None)] or [np.zeros(0)]))
        spans = np.asarray(intervals, dtype=float).reshape(-1, 2)
        if len(spans) == 0:
            return np.zeros(0)
        if len(grid) < 2:
            return np.zeros(len(spans))
        dt = np.diff(grid)
        # Covered seconds up to each grid time: a piecewise-linear function of t.
        covered = np.concatenate([[0.0], np.cumsum(np.where(dt <= max_gap_s, dt, 0.0))])
        t0, t1 = spans[:, 0], spans[:, 1]
        length = t1 - t0
        inside = np.interp(t1, grid, covered) - np.interp(t0, grid, covered)
        share = np.divide(inside, length, out=np.zeros(len(spans)), where=length > 0)
        # A zero-length request: covered when the stretch around it is.
        k = np.clip(np.searchsorted(grid, t0, side="right") - 1, 0, len(dt) - 1)
        point = (t0 >= grid[0]) & (t0 <= grid[-1]) & (dt[k] <= max_gap_s)
        return np.where(length > 0, np.clip(share, 0.0, 1.0), point.astype(float))

    def anomalies(self, max_gap_s: float) -> list[TimelineAnomaly]:
        """Gaps longer than `max_gap_s`, negative energy deltas and non-increasing times."""
        found: list[TimelineAnomaly] = []
        for name, s in self.domains.items():
            dt = np.diff(s.t)
            de = np.diff(s.energy_j)
            for i in np.flatnonzero(dt > max_gap_s):
                found.append(_anomaly(name, "gap", s, i, f"no sample for {dt[i]:.3f} s"))
            for i in np.flatnonzero(de < 0):
                detail = f"cumulative energy fell by {-de[i]:.6g} J"
                found.append(_anomaly(name, "negative_delta", s, i, detail))
            for i in np.flatnonzero(dt <= 0):
                detail = "sample time did not increase"
                found.append(_anomaly(name, "non_increasing_time", s, i, detail))
        return sorted(found, key=lambda a: (a.t_start, a.domain, a.kind))

    def to_rows(self) -> list[TimelineRow]:
        """Rows for power.parquet; power_w is the mean over the interval ending at the sample."""
        rows: list[TimelineRow] = []
        for name, s in self.domains.items():
            power = s.power_w()
            for t, e, p in zip(s.t.tolist(), s.energy_j.tolist(), power.tolist(), strict=True):
                rows.append(TimelineRow(t, name, e, None if math.isnan(p) else p, s.source))
        return rows

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> PowerTimeline:
        """Rebuild a timeline from rows: any objects with t, domain, energy_j and source."""
        ts: list[float] = []
        domains: list[str] = []
        energies: list[float] = []
        sources: list[str] = []
        for row in rows:
            ts.append(float(row.t))  # type: ignore[attr-defined]
            domains.append(row.domain)  # type: ignore[attr-defined]
            energies.append(float(row.energy_j))  # type: ignore[attr-defined]
            sources.append(row.source)  # type: ignore[attr-defined]
        return cls.from_columns(ts, domains, energies, sources)

    @classmethod
    def from_columns(
        cls,
        t: Sequence[float] | np.ndarray,
        domain: Sequence[str],
        energy_j: Sequence[float] | np.ndarray,
        source: Sequence[str],
    ) -> PowerTimeline:
        """Rebuild a timeline from power.parquet's columns.

        Samples are sorted by time within each domain; a repeated time keeps its last sample. A
        domain's label is that of its last row.
        """
        t_all = np.asarray(t, dtype=float)
        e_all = np.asarray(energy_j, dtype=float)
        d_all = np.asarray(domain, dtype=object)
        timeline = cls()
        for name in dict.fromkeys(d_all.tolist()):
            idx = np.flatnonzero(d_all == name)
            order = idx[np.argsort(t_all[idx], kind="stable")]
            times = t_all[order]
            keep = np.append(times[1:] != times[:-1], True)  # last of each repeated time
            timeline.domains[name] = DomainSeries(
                times[keep], e_all[order][keep], str(source[int(idx[-1])])
            )
        return timeline
