"""The learned router with the real packaged embedding model (a few dozen prompts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_data
from perwatt.analysis.learned_router import cross_validated_router, embed, load_prompts
from perwatt.analysis.routing import Candidate, Study, evaluate
from perwatt.errors import PerwattError
from perwatt.files import write_table
from perwatt.store import items_table
from perwatt.workloads import load_workload

WORDS = [
    "banana",
    "river",
    "window",
    "garden",
    "planet",
    "silver",
    "pencil",
    "orange",
    "forest",
    "candle",
    "rocket",
    "marble",
    "button",
    "island",
    "dragon",
    "violin",
    "castle",
    "pillow",
    "carpet",
    "helmet",
]


def two_topic_study() -> tuple[Study, list[str]]:
    """Small model S is right on arithmetic only and cheap; the reference L is always right."""
    arithmetic = [f"What is {7 * k + 3} plus {k + 11}? Give only the number." for k in range(20)]
    spelling = [f"Spell the word '{w}' backwards, letter by letter." for w in WORDS]
    prompts = arithmetic + spelling
    n = len(prompts)
    correct = np.zeros((n, 2), dtype=bool)
    correct[:20, 0] = True
    correct[:, 1] = True
    energy = np.column_stack([np.full(n, 1.0), np.full(n, 10.0)])

    def cand(name: str, acc: float, e: float) -> Candidate:
        return Candidate(name, "measured", name, None, "estimated:cputime", None, n, acc, e)

    study = Study(
        candidates=[cand("S", 0.5, 1.0), cand("L", 1.0, 10.0)],
        reference=1,
        items=[f"i{k}" for k in range(n)],
        correct=correct.astype(float),
        energy_j=energy,
        flops=np.full((n, 2), np.nan),
        cost_usd=energy * 1e-7,
        tokens_basis="prompt + completion tokens",
        usd_per_kwh=0.36,
        usd_per_kwh_default=False,
    )
    return study, prompts


def test_embeddings_are_unit_vectors_and_topics_separate():
    vectors = embed(["What is 3 plus 4?", "What is 10 plus 2?", "Spell 'river' backwards."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_cross_validated_router_learns_which_prompts_the_small_model_gets():
    study, prompts = two_topic_study()
    report, matrix = cross_validated_router(study, embed(prompts), folds=5, seed=0)
    score = report.scores[0]
    assert score.name == "S" and score.cv_auc is not None and score.cv_auc > 0.9
    (learned,), _ = evaluate(study, [("learned", matrix)], resamples=200)
    # Out of fold it keeps most arithmetic on S (saving energy) and sends spelling to L.
    assert learned.accuracy.value >= 0.9
    assert learned.energy_saved.value > 0.3  # the oracle saves 20 × 9 J / 400 J = 45%
    routed = {r.item_id: r.routed_to for r in report.routes}
    assert sum(routed[f"i{k}"] == "S" for k in range(20)) >= 15
    assert report.routes[0].p_correct[1] is None  # the reference is the fallback
    shares = [p.reference_share for p in report.curve.points]
    assert shares == sorted(shares) and report.curve.points[-1].reference_share == 1.0


def test_prompts_from_a_file_and_from_the_workload(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        json.dumps({"item_id": "a", "prompt": "hello"})
        + "\n"
        + json.dumps({"item_id": "b", "question": "bye"})
        + "\n"
    )
    assert load_prompts([], ["b", "a"], path) == ["bye", "hello"]
    with pytest.raises(PerwattError, match="no prompt for 1 item"):
        load_prompts([], ["c"], path)
    path.write_text("not json\n")
    with pytest.raises(PerwattError, match="expected a JSON object"):
        load_prompts([], ["a"], path)
    # From the run's items.parquet: the questions it was asked, never a regenerated workload.
    items = load_workload("reasoning-gym", limit=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_table(run_dir / "items.parquet", items_table(items, {}))
    run = run_data(str(run_dir), [])
    (text,) = load_prompts([run], ["chain_sum/0000"], None)
    assert "arithmetic" in text and "Answer:" in text
    with pytest.raises(PerwattError, match=r"older perwatt|--prompts"):
        load_prompts([run_data(str(tmp_path / "old"), [])], ["chain_sum/0000"], None)
