"""Trends: intelligence per joule and per watt against model release date or hardware
generation, with a log-linear fit and its doubling time.

y(t) = exp(a + b·t) with t in years: ln y is fitted by least squares, the factor per year is
e^b, the doubling time ln 2 / b (a halving time when b < 0), and over the span of the points
the fitted improvement is e^(b·Δt) — the reference study's "IPW rose 5.3× in two years" is that
figure. By default only the best run of each date is fitted (the frontier: the best that was
available then); `all_points` fits every run. A run with no correct answer has IPJ 0, which has
no logarithm: it is shown but left out of the fit, and the report says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from perwatt.analysis.catalogue import KNOWN_RELEASES
from perwatt.analysis.metrics import RunSummary
from perwatt.errors import PerwattError
from perwatt.store import Manifest

# Launch (announcement) dates of hardware generations, for `--by hardware`. Matched as a
# substring of the accelerator name, first match wins (longer names first).
KNOWN_ACCELERATORS: tuple[tuple[str, str], ...] = (
    ("GB200", "2024-03-18"),  # NVIDIA GTC 2024 keynote (Blackwell)
    ("B200", "2024-03-18"),  # NVIDIA GTC 2024 keynote (Blackwell)
    ("H200", "2023-11-13"),  # NVIDIA press release, SC23
    ("H100", "2022-03-22"),  # NVIDIA GTC 2022 keynote (Hopper)
    ("L40S", "2023-08-08"),  # NVIDIA SIGGRAPH 2023
    ("L4", "2023-03-21"),  # NVIDIA GTC 2023
    ("A100", "2020-05-14"),  # NVIDIA GTC 2020 keynote (Ampere)
    ("V100", "2017-05-10"),  # NVIDIA GTC 2017 keynote (Volta)
    ("RTX 4090", "2022-10-12"),  # NVIDIA retail launch
    ("RTX 3090", "2020-09-24"),  # NVIDIA retail launch
    ("MI300X", "2023-12-06"),  # AMD "Advancing AI" event
    ("MI250X", "2021-11-08"),  # AMD Accelerated Data Center event
)
# CPUs by (vendor, family, model number) as /proc/cpuinfo reports them.
KNOWN_CPUS: dict[tuple[str, str, str], tuple[str, str]] = {
    ("AuthenticAMD", "25", "17"): ("AMD EPYC Genoa (Zen 4)", "2022-11-10"),  # AMD launch event
    ("AuthenticAMD", "25", "1"): ("AMD EPYC Milan (Zen 3)", "2021-03-15"),  # AMD launch event
    ("AuthenticAMD", "23", "49"): ("AMD EPYC Rome (Zen 2)", "2019-08-07"),  # AMD launch event
    ("GenuineIntel", "6", "143"): ("Intel Xeon Sapphire Rapids", "2023-01-10"),  # Intel launch
    ("GenuineIntel", "6", "106"): ("Intel Xeon Ice Lake-SP", "2021-04-06"),  # Intel launch
}

# Student t, 97.5% quantile, by degrees of freedom (1–30); 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


@dataclass(frozen=True)
class TrendPoint:
    """One run placed in time."""

    run_id: str
    model: str
    hardware: str
    date: str
    date_source: str  # "manifest", "known", "given" (--date) or a hardware table
    years: float  # decimal year
    accuracy: float | None
    correct_per_kj: float | None
    ipw: float | None
    energy_label: str
    fitted: bool  # whether this point is in the fit (the frontier unless all points)


@dataclass(frozen=True)
class TrendFit:
    """ln(metric) = a + b·years, fitted by least squares."""

    metric: str  # "ipj" (correct answers per kJ) or "ipw" (accuracy per watt)
    n_points: int
    slope_per_year: float
    factor_per_year: float
    doubling_years: float | None  # None when the metric does not rise
    halving_years: float | None  # None when it does not fall
    doubling_years_ci: tuple[float, float] | None  # 95%, from the slope's t interval (n ≥ 3)
    r_squared: float | None
    span_years: float
    improvement_over_span: float  # fitted factor from the first to the last date
    first_date: str
    last_date: str


@dataclass(frozen=True)
class TrendReport:
    """Everything `perwatt trends` prints and writes."""

    by: str
    all_points: bool
    points: list[TrendPoint]
    fits: list[TrendFit]
    notes: list[str] = field(default_factory=list)


def parse_dates(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=YYYY-MM-DD` pairs (NAME: a model, run id or hardware name) into a mapping."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PerwattError(f"--date expects NAME=YYYY-MM-DD, not {pair!r}")
        _parse_date(value.strip(), f"--date {name.strip()}")
        out[name.strip()] = value.strip()
    return out


def _parse_date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise PerwattError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def decimal_year(day: dt.date) -> float:
    start = dt.date(day.year, 1, 1)
    length = (dt.date(day.year + 1, 1, 1) - start).days
    return day.year + (day - start).days / length


def hardware_generation(manifest: Manifest) -> tuple[str, str | None, str]:
    """(hardware name, launch date or None, where the date came from) for a run."""
    hardware = manifest.hardware
    if hardware is None:
        return "unknown hardware", None, ""
    if hardware.accelerators:
        name = hardware.accelerators[0].name or "unknown accelerator"
        for key, date in KNOWN_ACCELERATORS:
            if key.lower() in name.lower():
                return name, date, "known hardware"
        return name, None, ""
    cpu = hardware.cpu
    known = KNOWN_CPUS.get((cpu.vendor, cpu.family, cpu.model_number))
    if known is not None:
        return known[0], known[1], "known hardware"
    return cpu.model or "unknown CPU", None, ""


def trend_report(
    runs: Sequence[tuple[Manifest, RunSummary]],
    *,
    by: str = "release",
    dates: Mapping[str, str] | None = None,
    all_points: bool = False,
) -> TrendReport:
    """Place each run (its manifest and summary) in time and fit IPJ and IPW trends."""
    if by not in ("release", "hardware"):
        raise PerwattError(f"--by must be release or hardware, not {by!r}")
    dates = dict(dates or {})
    notes: list[str] = []
    placed: list[TrendPoint] = []
    undated = []
    for manifest, summary in runs:
        model = manifest.model
        name = model.name
        hw_name, hw_date, hw_source = hardware_generation(manifest)
        date, source = None, ""
        for key in (summary.run_id, name, hw_name):
            if key in dates:
                date, source = dates[key], "given"
                break
        if date is None and by == "release":
            if model.release_date:
                date, source = model.release_date, "manifest"
            elif name in KNOWN_RELEASES:
                date, source = KNOWN_RELEASES[name], "known"
        if date is None and by == "hardware" and hw_date:
            date, source = hw_date, hw_source
        if date is None:
            undated.append(name if by == "release" else hw_name)
            continue
        day = _parse_date(date, f"date of {name}")
        placed.append(
            TrendPoint(
                run_id=summary.run_id,
                model=name,
                hardware=hw_name,
                date=day.isoformat(),
                date_source=source,
                years=decimal_year(day),
                accuracy=summary.accuracy.value,
                correct_per_kj=summary.correct_per_kj.value,
                ipw=summary.ipw.value,
                energy_label=summary.energy_label,
                fitted=False,
            )
        )
    if undated:
        what = "release date" if by == "release" else "hardware launch date"
        raise PerwattError(
            f"no {what} known for {', '.join(sorted(set(undated)))}; give one with "
            "--date NAME=YYYY-MM-DD"
        )
    if len({p.date for p in placed}) < 2:
        raise PerwattError("a trend needs runs from at least two different dates")
    labels = {p.energy_label.partition(":")[0] for p in placed}
    if len(labels) > 1:
        notes.append(
            "MIXED ENERGY LABELS: the trend mixes estimated and measured energy; the slope is "
            "only as good as the estimate"
        )
    fits = []
    fitted_ids: set[str] = set()
    for metric, attr in (("ipj", "correct_per_kj"), ("ipw", "ipw")):
        usable = [p for p in placed if (getattr(p, attr) or 0) > 0]
        dropped = [p.model for p in placed if (getattr(p, attr) or 0) <= 0]
        if dropped:
            notes.append(
                f"{metric}: {', '.join(dropped)} had no correct answer (or no energy), so no "
                "logarithm; shown, not fitted"
            )
        if not all_points:
            best: dict[str, TrendPoint] = {}
            for p in usable:
                if p.date not in best or getattr(p, attr) > getattr(best[p.date], attr):
                    best[p.date] = p
            usable = list(best.values())
        if len({p.date for p in usable}) < 2:
            notes.append(f"{metric}: fewer than two dates with a positive value; no fit")
            continue
        fits.append(_fit(metric, usable, attr))
        fitted_ids |= {p.run_id for p in usable}
    points = [
        dataclasses.replace(p, fitted=p.run_id in fitted_ids)
        for p in sorted(placed, key=lambda p: (p.years, p.model))
    ]
    return TrendReport(by=by, all_points=all_points, points=points, fits=fits, notes=notes)


def _fit(metric: str, points: Sequence[TrendPoint], attr: str) -> TrendFit:
    t = np.array([p.years for p in points])
    y = np.log(np.array([getattr(p, attr) for p in points], dtype=float))
    n = t.size
    t0 = t.mean()
    sxx = float(((t - t0) ** 2).sum())
    slope = float(((t - t0) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * t0)
    resid = y - (intercept + slope * t)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / ss_tot if ss_tot > 0 and n > 2 else None
    ci = None
    if n >= 3:
        se = math.sqrt(float((resid**2).sum()) / (n - 2) / sxx)
        q = _T975[n - 3] if n - 2 <= len(_T975) else 1.96
        lo, hi = slope - q * se, slope + q * se
        # Doubling time is ln2/slope: an interval only when the whole slope interval is > 0.
        if lo > 0:
            ci = (math.log(2) / hi, math.log(2) / lo)
    span = float(t.max() - t.min())
    first = min(points, key=lambda p: p.years).date
    last = max(points, key=lambda p: p.years).date
    return TrendFit(
        metric=metric,
        n_points=n,
        slope_per_year=slope,
        factor_per_year=math.exp(slope),
        doubling_years=math.log(2) / slope if slope > 0 else None,
        halving_years=math.log(2) / -slope if slope < 0 else None,
        doubling_years_ci=ci,
        r_squared=r2,
        span_years=span,
        improvement_over_span=math.exp(slope * span),
        first_date=first,
        last_date=last,
    )
