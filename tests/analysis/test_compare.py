"""Paired comparison of two runs and claim verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import record
from conftest import run_data as make_run_data
from perwatt.analysis.compare import ParsedClaim, _items_needed, _judge, compare_runs, parse_claim
from perwatt.analysis.metrics import Estimate
from perwatt.errors import PerwattError
from perwatt.store import RunData


def run_data(name: str, correct, energy, *, items=None, label="estimated:cputime") -> RunData:
    items = items or [f"item/{k}" for k in range(len(correct))]
    rows = [
        record(
            run_id=name,
            request_id=k,
            model=name,
            item_id=item,
            prompt_tokens=5,
            completion_tokens=5,
            correct=bool(c),
            score=float(c),
            energy_j=float(e),
            energy_net_j=float(e),
            energy_source="x",
        )
        for k, (item, c, e) in enumerate(zip(items, correct, energy, strict=True))
    ]
    return make_run_data(f"/runs/{name}", rows, model=name, label=label)


def by_metric(result):
    return {m.metric: m for m in result.metrics}


def test_a_run_against_itself_is_no_difference():
    rng = np.random.default_rng(0)
    run = run_data("x", rng.random(40) < 0.5, rng.lognormal(1, 0.5, 40))
    result = compare_runs(run, run, claim="2x")
    metrics = by_metric(result)
    for name in ("j_per_correct", "ipj", "energy_per_query"):
        assert metrics[name].value == Estimate(1.0, 1.0, 1.0)
        assert metrics[name].verdict == "no difference"
    assert metrics["accuracy"].value == Estimate(0.0, 0.0, 0.0)
    assert metrics["accuracy"].verdict == "no difference"
    assert result.claim.verdict == "not supported"  # 1× is not 2×
    assert "A and B are the same run" in result.notes


def test_a_clear_two_fold_gain_is_supported():
    rng = np.random.default_rng(1)
    n = 400
    correct = rng.random(n) < 0.6
    base = rng.lognormal(1.0, 0.4, n)
    a = run_data("a", correct, base * rng.normal(1.0, 0.01, n))  # same answers, half the J
    b = run_data("b", correct, 2 * base)
    result = compare_runs(a, b, claim="2x")
    jpc = by_metric(result)["j_per_correct"]
    assert jpc.value.value == pytest.approx(0.5, rel=0.01)
    assert jpc.verdict == "A better"
    assert result.claim.verdict == "supported"
    assert result.claim.advantage.low >= result.claim.bar  # 2 / 1.05
    assert result.claim.items_needed is None
    # The same data do not support a 3× claim, and IPJ gives the same advantage as J/correct.
    assert compare_runs(a, b, claim="3x").claim.verdict == "not supported"
    ipj = compare_runs(a, b, claim="2x", metric="ipj").claim
    assert ipj.advantage.value == pytest.approx(result.claim.advantage.value)


def test_a_noisy_small_case_is_inconclusive_with_a_sample_size():
    rng = np.random.default_rng(2)
    n = 20
    a = run_data("a", rng.random(n) < 0.5, rng.lognormal(0.0, 1.0, n))
    b = run_data("b", rng.random(n) < 0.5, rng.lognormal(0.5, 1.0, n))
    claim = compare_runs(a, b, claim="2x").claim
    assert claim.verdict == "inconclusive"
    assert claim.items_needed is not None and claim.items_needed > n
    assert f"{claim.items_needed:,} shared items would give an 80% chance" in claim.explanation


def test_items_needed_is_a_power_calculation():
    # Bootstrap replicates of log F with standard error 0.1 at n = 100; the measured effect
    # log 2.5 against a bar of 1.9. An 80% chance that the 95% interval clears the bar needs
    # se·√(n/N)·(1.96 + 0.84) = gap: N = n·(se·2.8016/gap)².
    rng = np.random.default_rng(0)
    replicates = np.exp(rng.normal(math.log(2.5), 0.1, 20_000))
    se = float(np.std(np.log(replicates), ddof=1))
    needed = _items_needed(Estimate(2.5, 2.0, 3.0), 1.9, 100, replicates, log=True)
    expected = math.ceil(100 * (se * (1.959964 + 0.841621) / math.log(2.5 / 1.9)) ** 2)
    assert needed == max(expected, 101)
    # On the difference scale, below the bar: the items for an 80% chance of "not supported".
    diffs = rng.normal(0.03, 0.05, 20_000)
    se = float(np.std(diffs, ddof=1))
    assert _items_needed(Estimate(0.03, -0.07, 0.13), 0.05, 50, diffs, log=False) == math.ceil(
        50 * (se * 2.801585 / 0.02) ** 2
    )
    # An effect sitting on the bar: no sample size settles it.
    assert _items_needed(Estimate(1.9, 1.0, 3.0), 1.9, 50, replicates, log=True) is None


def test_a_verdict_never_hangs_on_rounding():
    parsed = ParsedClaim("factor", 2.0)
    bar = 2.0 / 1.05  # 1.90476...
    replicates = np.linspace(1.9, 2.5, 1000)
    # The interval's low edge clears the bar by less than the three figures a table shows.
    edge = _judge("2x", "j_per_correct", parsed, Estimate(2.2, bar + 1e-6, 2.5), 0.05, 100,
                  replicates)  # fmt: skip
    assert edge.verdict == "inconclusive"
    clear = _judge("2x", "j_per_correct", parsed, Estimate(2.2, 1.95, 2.5), 0.05, 100,
                   replicates)  # fmt: skip
    assert clear.verdict == "supported" and "BCa" in clear.explanation


def test_a_repeated_item_counts_with_the_mean_of_its_attempts():
    # A answers item 0 twice (right once, wrong once) and three others right: 3.5 of 4 items.
    a = run_data("a", [1, 0, 1, 1, 1], [1.0] * 5, items=["i0", "i0", "i1", "i2", "i3"])
    b = run_data("b", [1, 1, 1, 1], [1.0] * 4, items=["i0", "i1", "i2", "i3"])
    result = compare_runs(a, b)
    assert result.a.accuracy == pytest.approx(0.875)


def test_accuracy_claims_in_points_and_energy_per_query():
    correct_a = [1] * 30 + [0] * 10
    correct_b = [1] * 10 + [0] * 30
    a = run_data("a", correct_a, [1.0] * 40)
    b = run_data("b", correct_b, [1.0] * 40)
    pp = compare_runs(a, b, claim="+20pp", metric="accuracy").claim
    assert pp.kind == "difference" and pp.advantage.value == pytest.approx(0.5)
    assert pp.verdict == "supported"
    assert compare_runs(a, b, claim="3x", metric="accuracy").claim.advantage.value == 3.0
    epq = compare_runs(a, b, claim="1x", metric="energy_per_query").claim
    assert epq.advantage.value == 1.0 and epq.verdict == "supported"


def test_only_shared_items_are_compared_and_labels_are_flagged():
    a = run_data("a", [1, 0, 1], [1.0, 1.0, 1.0], items=["i1", "i2", "i3"])
    b = run_data("b", [1, 1, 0], [2.0, 2.0, 2.0], items=["i2", "i3", "i4"], label="measured:nvml")
    result = compare_runs(a, b)
    assert (result.n_shared, result.only_a, result.only_b) == (2, 1, 1)
    assert result.a.accuracy == 0.5 and result.b.accuracy == 1.0  # on i2 and i3 only
    assert result.energy_labels_differ
    assert any(n.startswith("ENERGY LABELS DIFFER") for n in result.notes)
    assert result.claim is None


def test_bad_input():
    a = run_data("a", [1], [1.0], items=["x"])
    b = run_data("b", [1], [1.0], items=["y"])
    with pytest.raises(PerwattError, match="share no item"):
        compare_runs(a, b)
    with pytest.raises(PerwattError, match="cannot read the claim"):
        parse_claim("twice", "ipj")
    with pytest.raises(PerwattError, match="needs --metric accuracy"):
        parse_claim("+5pp", "ipj")
    with pytest.raises(PerwattError, match="unknown metric"):
        compare_runs(a, a, metric="speed")
    assert parse_claim("2×", "ipj").target == 2.0
