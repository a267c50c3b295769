"""Coverage and routing on a fixture small enough to work out by hand (6 items × 3 models)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import record as request_record
from conftest import run_data as make_run_data
from perwatt.analysis.routing import (
    ExternalProfile,
    alpha_matrix,
    build_study,
    evaluate,
    oracle_matrix,
    route_report,
    simulate_alpha_router,
)
from perwatt.errors import PerwattError
from perwatt.records import RequestRecord
from perwatt.store import RunData

# Which of the 6 items each model answers correctly (1) — worked through by hand below.
#            item:  1  2  3  4  5  6
CORRECT = {"S": [1, 0, 0, 1, 0, 1], "M": [1, 1, 0, 0, 0, 1], "L": [1, 1, 1, 0, 0, 0]}
ENERGY_J = {"S": 1.0, "M": 3.0, "L": 4.0}  # per item, every item
PARAMS = {"S": 1e9, "M": 2e9, "L": 4e9}  # active parameters; 10 prompt + 10 completion tokens


def record(
    run_id: str,
    model: str,
    i: int,
    item: str,
    correct: bool,
    energy: float,
    *,
    status: str = "ok",
    prompt: int | None = 10,
) -> RequestRecord:
    return request_record(
        run_id=run_id,
        request_id=i,
        model=model,
        endpoint="http://127.0.0.1:1/v1",
        item_id=item,
        prompt_tokens=prompt,
        completion_tokens=10,
        t_scheduled=float(i),
        t_sent=float(i),
        t_first_token=i + 0.1,
        t_done=i + 1.0,
        status=status,
        correct=correct,
        score=float(correct),
        energy_j=energy,
        energy_net_j=energy,
        energy_source="x",
    )


def run_data(
    name: str,
    correct: list[int],
    energy: float,
    params: float | None,
    *,
    items: list[str] | None = None,
    label: str = "estimated:cputime",
) -> RunData:
    items = items or [f"item/{k + 1}" for k in range(len(correct))]
    rows = [
        record(f"run-{name}", name, k, item, bool(c), energy)
        for k, (item, c) in enumerate(zip(items, correct, strict=True))
    ]
    return make_run_data(f"/runs/run-{name}", rows, model=name, label=label,
                         active_params=None if params is None else int(params))  # fmt: skip


@pytest.fixture
def runs() -> list[RunData]:
    return [run_data(m, CORRECT[m], ENERGY_J[m], PARAMS[m]) for m in ("S", "M", "L")]


def test_coverage_of_every_subset_by_hand(runs):
    study = build_study(runs)
    report = route_report(study, resamples=200)
    cov = report.coverage
    got = {tuple(s.models): s.coverage for s in cov.all_subsets}
    # S {1,4,6}, M {1,2,6}, L {1,2,3}; unions by hand:
    assert got == pytest.approx(
        {
            ("S",): 3 / 6,
            ("M",): 3 / 6,
            ("L",): 3 / 6,
            ("S", "M"): 4 / 6,
            ("S", "L"): 5 / 6,
            ("M", "L"): 4 / 6,
            ("S", "M", "L"): 5 / 6,
        }
    )
    assert [s.models for s in cov.best_by_size] == [["S"], ["S", "L"], ["S", "M", "L"]]
    assert cov.everything.value == pytest.approx(5 / 6)
    assert cov.everything.low <= 5 / 6 <= cov.everything.high


def test_oracle_savings_by_hand(runs):
    study = build_study(runs, usd_per_kwh=0.36)  # 0.36 $/kWh = 1e-7 $/J
    # Accuracy ties at 3/6: the reference is the larger model, L.
    assert study.candidates[study.reference].name == "L"
    assert study.tokens_basis == "prompt + completion tokens"
    (oracle,), _ = evaluate(study, [("oracle", oracle_matrix(study))], resamples=200)
    # Oracle: item1 S, item2 M, item3 L, item4 S, item5 nobody → L, item6 S.
    # Energy 1+3+4+1+4+1 = 14 J against 6 × 4 = 24 J always-L: 10/24 saved.
    assert oracle.energy_j == pytest.approx(14.0)
    assert oracle.energy_saved_j == pytest.approx(10.0)
    assert oracle.energy_saved.value == pytest.approx(10 / 24)
    assert oracle.accuracy.value == pytest.approx(5 / 6)
    assert oracle.reference_share == pytest.approx(2 / 6)
    # Compute: 2 × params × 20 tokens: S 4e10, M 8e10, L 1.6e11 per item.
    # Oracle 3 × 4e10 + 8e10 + 2 × 1.6e11 = 5.2e11 against 9.6e11: 1 − 5.2/9.6 saved.
    assert oracle.flops == pytest.approx(5.2e11)
    assert oracle.compute_saved.value == pytest.approx(1 - 5.2 / 9.6)
    # Cost: 14 J × 1e-7 $/J.
    assert oracle.cost_usd == pytest.approx(14e-7)
    assert oracle.cost_saved.value == pytest.approx(10 / 24)
    assert {s.name: s.share for s in oracle.shares} == pytest.approx(
        {"S": 3 / 6, "M": 1 / 6, "L": 2 / 6}
    )
    assert oracle.energy_label == "estimated:cputime"


@pytest.mark.parametrize("alpha", [0.5, 0.8, 1.0])
def test_alpha_router_misrouting_to_the_reference_by_hand(runs, alpha):
    study = build_study(runs)
    (out,), _ = evaluate(study, [("a", alpha_matrix(study, alpha))], resamples=100)
    # The reference study's reading: a misrouted item goes to L. So accuracy and savings are
    # α × the oracle's (5/6, 10 of 24 J saved) plus (1 − α) × always-L's (3/6, nothing saved).
    assert out.accuracy.value == pytest.approx(alpha * 5 / 6 + (1 - alpha) * 3 / 6)
    assert out.energy_j == pytest.approx(alpha * 14 + (1 - alpha) * 24)
    assert out.energy_saved.value == pytest.approx(alpha * 10 / 24)


@pytest.mark.parametrize("alpha", [0.5, 0.8, 1.0])
def test_alpha_router_misrouting_at_random_by_hand(runs, alpha):
    study = build_study(runs)
    (out,), _ = evaluate(study, [("a", alpha_matrix(study, alpha, "random"))], resamples=100)
    # Per item, oracle o_i with P = α and each other model (1 − α)/2:
    #   item1 o=S: α + (1−α)/2·(1+1) = 1;  item2 o=M: α + (1−α)/2·(0+1);  item3 o=L: α;
    #   item4 o=S: α;  item5 o=L: 0;  item6 o=S: α + (1−α)/2·(1+0).
    # Sum: 2 + 3α. Energy: α·14 + (1−α)/2·(6·8 − 14) = 17 − 3α.
    assert out.accuracy.value == pytest.approx((2 + 3 * alpha) / 6)
    assert out.energy_j == pytest.approx(17 - 3 * alpha)
    assert out.energy_saved.value == pytest.approx(1 - (17 - 3 * alpha) / 24)


def test_alpha_router_simulation_matches_the_analytic_expectation(runs):
    study = build_study(runs)
    analytic = alpha_matrix(study, 0.8, "random")
    simulated = simulate_alpha_router(study, 0.8, trials=20_000, seed=7)
    assert np.abs(simulated - analytic).max() < 0.015
    # The oracle's pick is never the "wrong" choice: its frequency is α, not more.
    oracle = oracle_matrix(study)
    assert np.allclose((simulated * oracle).sum(axis=1), 0.8, atol=0.015)
    acc = (simulated * study.correct).sum() / study.n_items
    assert acc == pytest.approx((2 + 3 * 0.8) / 6, abs=0.01)
    to_reference = simulate_alpha_router(study, 0.8, trials=20_000, seed=7, misroute="reference")
    assert np.abs(to_reference - alpha_matrix(study, 0.8)).max() < 0.015


def test_external_reference_is_stated_and_priced_per_token(runs):
    profile = ExternalProfile.parse(
        "name=cloud,j_per_token=0.5,usd_per_mtok_in=1,usd_per_mtok_out=2,"
        "accuracy_from=assume_correct"
    )
    study = build_study(runs, profile=profile, usd_per_kwh=0.36)
    ref = study.candidates[study.reference]
    assert (ref.name, ref.kind, ref.energy_label) == ("cloud", "external", "stated")
    report = route_report(study, alphas=(), resamples=100)
    oracle = next(o for o in report.outcomes if o.policy == "oracle")
    always = next(o for o in report.outcomes if o.policy == "always cloud")
    # The cloud model: 0.5 J/token × 20 tokens = 10 J and (10·1 + 10·2)/1e6 $ per item.
    assert always.energy_j == pytest.approx(60.0)
    assert always.cost_usd == pytest.approx(6 * 30e-6)
    # Oracle: S, M, L (4 J beats 10 J), S, cloud (nobody local), S = 1+3+4+1+10+1 = 20 J.
    assert oracle.energy_j == pytest.approx(20.0)
    assert oracle.energy_saved.value == pytest.approx(1 - 20 / 60)
    assert oracle.accuracy.value == 1.0
    assert oracle.energy_label == "estimated:cputime + stated"
    assert oracle.compute_saved is None  # the profile states no active params
    assert any("stated by the user" in n for n in report.notes)


def test_external_reference_answers_from_a_run(runs):
    cloud_run = run_data("big", [1, 1, 1, 1, 0, 1], 99.0, None)
    profile = ExternalProfile.parse(
        "name=cloud,j_per_token=1,usd_per_mtok_in=0,usd_per_mtok_out=0,accuracy_from=big"
    )
    study = build_study([*runs, cloud_run], profile=profile)
    # The run that supplies the answers leaves the local pool.
    assert [c.name for c in study.candidates] == ["S", "M", "L", "cloud"]
    assert study.correct[:, 3].tolist() == [1, 1, 1, 1, 0, 1]
    assert study.energy_j[:, 3].tolist() == [20.0] * 6  # 1 J/token × 20 tokens, not 99 J


def test_mixed_energy_labels_are_flagged(runs):
    runs[0] = run_data("S", CORRECT["S"], 1.0, 1e9, label="measured:nvml")
    study = build_study(runs)
    assert study.mixed_labels
    assert any(n.startswith("MIXED ENERGY LABELS") for n in study.notes)


def test_missing_prompt_tokens_switch_compute_to_completion_tokens(runs):
    rows = [
        record("run-S", "S", k, f"item/{k + 1}", bool(c), 1.0, prompt=None)
        for k, c in enumerate(CORRECT["S"])
    ]
    runs[0] = make_run_data("/runs/S", rows, model="S", active_params=10**9)
    study = build_study(runs)
    assert study.tokens_basis == "completion tokens only"
    assert study.flops[0, 0] == pytest.approx(2 * 1e9 * 10)


def test_items_not_shared_by_every_run_are_named_and_left_out(runs):
    extra = run_data("X", [1] * 7, 1.0, 1e9, items=[*(f"item/{k}" for k in range(1, 7)), "only"])
    study = build_study([*runs, extra])
    assert study.n_items == 6
    assert [(lo.name, lo.item_ids) for lo in study.left_out] == [("X", ["only"])]


def test_a_run_on_other_items_is_a_clear_error(runs):
    stranger = run_data("Z", [1, 0], 1.0, 1e9, items=["other/1", "other/2"])
    with pytest.raises(PerwattError, match="run Z shares no item"):
        build_study([*runs, stranger])


def test_errors_count_as_incorrect(runs):
    rows = [record("run-S", "S", k, f"item/{k + 1}", False, 1.0, status="error") for k in range(6)]
    runs[0] = make_run_data("/runs/S", rows, model="S", active_params=10**9)
    study = build_study(runs)
    assert not study.correct[:, 0].any()


def test_an_error_row_marked_correct_is_refused(tmp_path, runs):
    from perwatt.store import check_requests, records_table

    rows = [record("run-S", "S", 0, "item/1", True, 1.0, status="error")]
    with pytest.raises(PerwattError, match="only a complete answer can be correct"):
        check_requests(records_table(rows), tmp_path / "requests.parquet")


def test_reference_by_name_and_bad_profiles(runs):
    assert build_study(runs, reference="M").reference == 1
    with pytest.raises(PerwattError, match="none of the runs"):
        build_study(runs, reference="nope")
    with pytest.raises(PerwattError, match="j_per_token= is required"):
        ExternalProfile.parse("name=x,usd_per_mtok_in=1,usd_per_mtok_out=1,accuracy_from=a")
    with pytest.raises(PerwattError, match="must be a number"):
        ExternalProfile.parse(
            "name=x,j_per_token=lots,usd_per_mtok_in=1,usd_per_mtok_out=1,"
            "accuracy_from=assume_correct"
        )


def test_curves_and_frontier(runs):
    report = route_report(build_study(runs), resamples=100)
    oracle, random = report.curves[0], report.curves[1]
    assert oracle.points[0].reference_share == 0 and oracle.points[-1].reference_share == 1
    # Share 0: every item stays with S or M (cheapest correct, else cheapest) = 4/6 correct.
    assert oracle.points[0].accuracy == pytest.approx(4 / 6)
    # All to L: L's accuracy and 24 J; the oracle curve never falls below the random one.
    assert oracle.points[-1].accuracy == pytest.approx(3 / 6)
    assert oracle.points[-1].energy_j == pytest.approx(24.0)
    for o, r in zip(oracle.points, random.points, strict=True):
        assert o.accuracy >= r.accuracy - 1e-12
    energies = [p.energy_j for p in report.frontier]
    accuracies = [p.accuracy for p in report.frontier]
    assert energies == sorted(energies) and accuracies == sorted(accuracies)
    assert report.frontier[-1].accuracy == pytest.approx(5 / 6)
    assert math.isclose(report.frontier[0].energy_j, 6.0)  # S alone: 6 × 1 J


def _wide_run(name: str, correct: np.ndarray, params: float) -> RunData:
    """A run of len(correct) items built as a table (records would be slow at this size)."""
    import pyarrow as pa

    from conftest import make_manifest
    from perwatt.store import check_requests, power_table

    n = correct.size
    t = np.arange(n, dtype=float)
    table = pa.table({
        "run_id": [f"run-{name}"] * n, "model": [name] * n,
        "item_id": [f"item/{k}" for k in range(n)], "domain": ["d"] * n, "status": ["ok"] * n,
        "correct": correct, "energy_j": np.ones(n), "energy_net_j": np.ones(n),
        "prompt_tokens": np.full(n, 10), "completion_tokens": np.full(n, 10),
        "t_scheduled": t, "t_sent": t, "t_first_token": t + 0.1, "t_done": t + 1.0,
    })  # fmt: skip
    path = Path(f"/runs/run-{name}")
    manifest = make_manifest(f"run-{name}", model=name, n=n, active_params=int(params))
    return RunData(path, manifest, check_requests(table, path), power_table([]))


def test_coverage_interval_above_the_exact_limit_is_binomial_sized():
    """Above 20,000 items the bootstrap draws Poisson(1) weights, so a resample's item count
    varies; coverage divides each resample's covered sum by that count (not by n, which made
    the interval of coverage of all models [0.9796, 1.0021] on 30,000 items at p≈0.99)."""
    n = 30_000
    rng = np.random.default_rng(7)
    runs = [_wide_run(m, rng.random(n) < 0.9, p) for m, p in (("S", 1e9), ("L", 4e9))]
    study = build_study(runs)
    assert study.n_items == n
    report = route_report(study, alphas=(), resamples=1000, seed=3)
    everything = report.coverage.everything
    p = float(everything.value)
    assert 0.985 < p < 0.995  # two independent 90% models: 1 − 0.1² ≈ 0.99
    assert everything.high <= 1.0
    assert everything.low < p < everything.high
    binomial = 2 * 1.959964 * math.sqrt(p * (1 - p) / n)
    assert (everything.high - everything.low) == pytest.approx(binomial, rel=0.2)
