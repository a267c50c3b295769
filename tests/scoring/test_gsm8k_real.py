"""Acceptance on real data: perwatt's GSM8K scoring agrees with the dataset authors' labels.

`../shared/data/gsm8k/model_solutions.jsonl` (beside the repository) holds four models' solutions
to the 1,319 GSM8K test problems, each labelled `is_correct` by the authors. perwatt must agree on
at least 99.5% of the 5,276 solutions and reproduce each model's labelled accuracy (21.7%, 39.0%,
34.7%, 56.3%) within half a point. Skipped when the shared data is not there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perwatt.cli import main
from perwatt.scoring.rescore import agreement_by_model, score_outputs
from perwatt.workloads.outputs import read_outputs

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k"
SOLUTIONS = SHARED / "model_solutions.jsonl"
EXPECTED = {
    "6b_finetuning": 0.217,
    "6b_verification": 0.390,
    "175b_finetuning": 0.347,
    "175b_verification": 0.563,
}

pytestmark = pytest.mark.skipif(not SOLUTIONS.is_file(), reason="../shared/data is absent")


def test_agrees_with_the_authors_labels() -> None:
    rows, mapping = read_outputs(SOLUTIONS)  # the default mapping finds the four model columns
    assert (mapping.reference, mapping.response, mapping.label) == (
        "ground_truth", "*.solution", "*.is_correct",
    )  # fmt: skip
    assert len(rows) == 5276
    scored, _ = score_outputs(rows, "gsm8k", scorer="numeric")
    agree = sum(s.row.label == s.detail.correct for s in scored)
    assert agree / len(scored) >= 0.995, f"agreement {agree}/{len(scored)}"
    per_model = {m.model: m for m in agreement_by_model(scored)}
    assert set(per_model) == set(EXPECTED)
    for model, expected in EXPECTED.items():
        assert per_model[model].n == 1319
        assert abs(per_model[model].accuracy - expected) <= 0.005, model


def test_the_cli_prints_agreement_and_the_per_model_table(capsys) -> None:
    main(["score", "--workload", "gsm8k", "--outputs", str(SOLUTIONS)])
    out = capsys.readouterr().out
    assert "agreement with the file's labels: " in out
    line = next(ln for ln in out.splitlines() if "agreement with the file's labels" in ln)
    agree, total = (
        int(x.replace(",", "")) for x in line.split(": ")[1].split(" (")[0].split(" / ")
    )
    assert total == 5276 and agree / total >= 0.995
    for model, expected in EXPECTED.items():
        row = next(ln for ln in out.splitlines() if f"│ {model} " in ln)
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[1] == "1319"
        assert abs(float(cells[2]) - 100 * expected) <= 0.5
