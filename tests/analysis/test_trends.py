"""Trends: log-linear fit and doubling time of IPJ and IPW over release dates."""

from __future__ import annotations

import math

import pytest

from conftest import make_manifest, record, run_data
from perwatt.analysis.summaries import compute_summaries
from perwatt.analysis.trends import decimal_year, parse_dates, trend_report
from perwatt.errors import PerwattError
from perwatt.hardware import CpuInfo, HardwareInfo


def summary(name: str, energy_per_query: float, n_correct: int = 5, n: int = 10):
    rows = [
        record(
            run_id=f"run-{name}",
            request_id=k,
            model=name,
            item_id=f"i{k}",
            prompt_tokens=1,
            completion_tokens=1,
            correct=k < n_correct,
            energy_j=energy_per_query,
            energy_net_j=energy_per_query,
            energy_source="x",
        )
        for k in range(n)
    ]
    (s,) = compute_summaries([run_data(f"/runs/run-{name}", rows, model=name, resamples=20,
                                       window_s=10.0, window_j=1.0)])  # fmt: skip
    return s


def manifest(name: str, release: str | None = None):
    cpu = CpuInfo("AMD EPYC", "AuthenticAMD", "25", "17", 2, 2, 2)
    hardware = HardwareInfo("h", "Linux", "6", cpu, 1.0, "none")
    return make_manifest(f"run-{name}", model=name, release_date=release, hardware=hardware)


def test_doubling_every_year_is_recovered():
    runs = [
        (manifest("a", "2023-01-01"), summary("a", 4.0)),
        (manifest("b", "2024-01-01"), summary("b", 2.0)),
        (manifest("c", "2025-01-01"), summary("c", 1.0)),
    ]
    report = trend_report(runs)
    fits = {f.metric: f for f in report.fits}
    for metric in ("ipj", "ipw"):  # IPJ = 0.5/E; IPW = 0.5/(E/1 s): both double each year
        f = fits[metric]
        assert f.n_points == 3
        assert f.slope_per_year == pytest.approx(math.log(2))
        assert f.doubling_years == pytest.approx(1.0)
        assert f.improvement_over_span == pytest.approx(4.0)
        assert f.r_squared == pytest.approx(1.0)
        assert f.doubling_years_ci == pytest.approx((1.0, 1.0))  # a perfect fit: no spread
    assert [p.date_source for p in report.points] == ["manifest"] * 3


def test_only_the_best_run_of_a_date_is_fitted_unless_all_points():
    runs = [
        (manifest("a", "2023-01-01"), summary("a", 4.0)),
        (manifest("a2", "2023-01-01"), summary("a2", 40.0)),
        (manifest("b", "2025-01-01"), summary("b", 1.0)),
    ]
    frontier = trend_report(runs)
    assert [p.fitted for p in frontier.points] == [True, False, True]
    assert frontier.fits[0].improvement_over_span == pytest.approx(4.0)
    everything = trend_report(runs, all_points=True)
    assert everything.fits[0].n_points == 3
    assert everything.fits[0].improvement_over_span > 4.0  # the worse 2023 run steepens it


def test_falling_trend_gives_a_halving_time_and_zero_correct_is_not_fitted():
    runs = [
        (manifest("a", "2023-01-01"), summary("a", 1.0)),
        (manifest("b", "2025-01-01"), summary("b", 4.0)),
        (manifest("z", "2024-01-01"), summary("z", 1.0, n_correct=0)),
    ]
    report = trend_report(runs)
    ipj = report.fits[0]
    assert ipj.doubling_years is None and ipj.halving_years == pytest.approx(1.0)
    assert any("z had no correct answer" in n for n in report.notes)


def test_dates_from_the_known_table_overrides_and_hardware():
    runs = [
        (manifest("smollm2-135m"), summary("s", 2.0)),
        (manifest("gemma3-270m"), summary("g", 1.0)),
    ]
    report = trend_report(runs)
    assert [p.date for p in report.points] == ["2024-11-01", "2025-08-14"]
    moved = trend_report(runs, dates=parse_dates(["gemma3-270m=2026-11-01"]))
    assert moved.points[-1].date == "2026-11-01" and moved.points[-1].date_source == "given"
    with pytest.raises(PerwattError, match="at least two different dates"):
        trend_report(runs, by="hardware")  # both on the same (known) CPU generation
    assert trend_report(runs, by="hardware", dates={"run-g": "2030-01-01"}).points[0].hardware


def test_bad_input():
    with pytest.raises(PerwattError, match="no release date known for x"):
        trend_report(
            [(manifest("x"), summary("x", 1.0)), (manifest("y", "2024-01-01"), summary("y", 1.0))]
        )
    with pytest.raises(PerwattError, match="NAME=YYYY-MM-DD"):
        parse_dates(["2024-01-01"])
    with pytest.raises(PerwattError, match="not a date"):
        parse_dates(["a=soon"])
    assert decimal_year(__import__("datetime").date(2024, 7, 2)) == pytest.approx(2024.5, abs=0.01)
