"""The metrics kernel: each figure follows DESIGN.md's definition, on columns of real rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_row, run_data
from perwatt.analysis._bootstrap import EXACT_LIMIT, bootstrap_sums
from perwatt.analysis.metrics import RunSummary, latency
from perwatt.analysis.routing import oracle_choice, subset_coverage
from perwatt.analysis.summaries import compute_summaries


def summary_of(rows, **manifest) -> RunSummary:
    manifest.setdefault("window_s", 19.0)
    manifest.setdefault("window_j", 60.0)
    (s,) = compute_summaries([run_data("/runs/r1", rows, **manifest)])
    return s


def test_point_metrics_follow_the_design_definitions(rows):
    s = summary_of(rows)
    # 4 correct of 10; energies 1..10 J sum to 55 J; latencies 1 s each.
    assert (s.n, s.n_requests, s.n_correct, s.n_error) == (10, 10, 4, 1)
    assert s.accuracy.value == 0.4
    assert s.energy_per_query_j.value == 5.5
    assert s.net_energy_per_query_j.value == 5.0
    assert s.joules_per_correct.value == 55 / 4
    assert s.correct_per_kj.value == 4 / 55 * 1000
    assert s.avg_power_w.value == 55 / 10  # ΣE / ΣL, sequential
    assert s.ipw.value == pytest.approx(0.4 / 5.5)
    # The reference harness's reading: accuracy over the mean per-query power mean(E_i / L_i).
    assert s.avg_power_per_query_w.value == pytest.approx(5.5)
    assert s.ipw_per_query.value == pytest.approx(0.4 / 5.5)
    assert s.requests_per_s == 10 / 19
    assert s.energy_label == "estimated:cputime"


def test_intervals_bracket_the_point_and_are_reproducible(rows):
    a, b = summary_of(rows, seed=3, resamples=500), summary_of(rows, seed=3, resamples=500)
    assert a == b
    for est in (a.accuracy, a.energy_per_query_j, a.correct_per_kj, a.avg_power_w, a.ipw):
        assert est.low is not None and est.high is not None
        assert est.low <= est.value <= est.high
    assert a.accuracy.high - a.accuracy.low > 0.2  # n = 10 is very uncertain


def test_no_correct_answer_leaves_joules_per_correct_undefined(rows):
    for r in rows:
        r.correct = False
    s = summary_of(rows)
    assert s.joules_per_correct.value is None
    assert s.correct_per_kj.value == 0.0
    assert s.accuracy.value == 0.0


def test_a_figure_without_an_interval_says_why(rows):
    for r in rows:
        r.correct = False
    rows[0].correct = True  # one correct answer: most resamples have none
    s = summary_of(rows)
    assert s.joules_per_correct.value == 55.0
    assert s.joules_per_correct.low is None
    assert "too few correct answers (1)" in s.joules_per_correct.why


def test_per_domain_breakdown_with_wilson_intervals(rows):
    for r in rows[:3]:
        r.domain = "strings"
    s = summary_of(rows)
    by = {d.domain: d for d in s.domains}
    assert by["strings"].n == 3 and math.isclose(by["strings"].accuracy.value, 2 / 3)
    assert 0 < by["strings"].accuracy.low < 2 / 3 < by["strings"].accuracy.high < 1
    assert by["strings"].energy_per_query_j == 2.0
    assert by["arithmetic"].n == 7


def test_concurrent_power_uses_the_metered_window_with_a_block_bootstrap(rows):
    blocks = [(1.0, 3.0 + 0.2 * (k % 3)) for k in range(19)]
    s = summary_of(rows, concurrency=4, totals={"window_blocks": blocks})
    assert s.avg_power_w.value == 60.0 / 19.0
    assert s.avg_power_w.low < s.avg_power_w.value < s.avg_power_w.high
    assert s.ipw.low is not None
    # Without time blocks there is no interval, and the summary says why.
    bare = summary_of(rows, concurrency=4)
    assert bare.avg_power_w.low is None and "time blocks" in bare.avg_power_w.why


def test_latency_is_derived_once_from_the_times():
    lat = latency([0.0, 1.0, 2.0], [0.5, np.nan, 2.2], [2.5, 3.0, 2.2], [5, 3, 1])
    assert lat.ttft_s[0] == 0.5 and np.isnan(lat.ttft_s[1])
    assert lat.e2e_s.tolist() == pytest.approx([2.5, 2.0, 0.2])
    # vLLM's TPOT: (done − first token) / (tokens − 1); undefined for one token.
    assert lat.tpot_s[0] == 0.5 and np.isnan(lat.tpot_s[2])


def test_tpot_has_p50_p90_and_p99(rows):
    s = summary_of(rows)
    assert s.tpot_p50_s is not None and s.tpot_p90_s is not None and s.tpot_p99_s is not None


def test_a_repeated_item_counts_once_with_the_mean_of_its_attempts():
    # Item 0 answered twice (right once, wrong once), three other items right: 3.5 of 4.
    rows = [make_row(i, correct=bool(c), energy=1.0) for i, c in enumerate([1, 0, 1, 1, 1])]
    rows[1].item_id = rows[0].item_id
    s = summary_of(rows)
    assert (s.n, s.n_requests) == (4, 5)
    assert s.accuracy.value == pytest.approx(0.875)


def test_poisson_path_gives_the_binomial_interval():
    n = 3 * EXACT_LIMIT
    rng = np.random.default_rng(0)
    c = (rng.random(n) < 0.3).astype(float)
    sums = bootstrap_sums(np.column_stack([np.ones(n), c]), 400, seed=1)
    acc = sums[:, 1] / sums[:, 0]
    p = c.mean()
    assert acc.mean() == pytest.approx(p, abs=5e-4)
    assert acc.std() == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.15)
    again = bootstrap_sums(np.column_stack([np.ones(n), c]), 400, seed=1)
    assert np.array_equal(sums, again)


def test_exact_path_draws_n_items_per_resample():
    sums = bootstrap_sums(np.ones((50, 1)), 300, seed=0)
    assert np.all(sums == 50)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda m: st.lists(
            st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=m, max_size=m),
            min_size=1,
            max_size=25,
        )
    )
)
def test_subset_coverage_matches_brute_force(rows):
    correct = np.array(rows, dtype=float)
    m = correct.shape[1]
    cov = subset_coverage(correct)
    for mask in range(1 << m):
        members = [b for b in range(m) if mask >> b & 1]
        expected = correct[:, members].max(axis=1).mean() if members else 0.0
        assert cov[mask] == pytest.approx(expected)


def test_oracle_choice_takes_the_cheapest_correct_else_the_reference():
    correct = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=float)
    energy = np.array([[5.0, 1.0, 9.0], [1.0, 1.0, 1.0], [0.1, 3.0, 2.0]])
    assert oracle_choice(correct, energy, reference=2).tolist() == [1, 2, 2]
