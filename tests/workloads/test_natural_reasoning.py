"""NaturalReasoning from a JSONL fixture in the real schema; judge-scored."""

from __future__ import annotations

from pathlib import Path

import pytest

from perwatt.errors import PerwattError
from perwatt.scoring import PENDING_JUDGE, score_response, scorer_for
from perwatt.workloads import load_workload

FIXTURE = Path(__file__).parents[1] / "fixtures" / "natural_reasoning" / "natural_reasoning.jsonl"


def test_items_with_a_reference_answer() -> None:
    items = load_workload("natural-reasoning", limit=10, data_file=FIXTURE)
    # The second record has an empty reference answer: it cannot be graded, so it is left out.
    assert sorted(i.item_id for i in items) == [
        "natural-reasoning/0000000", "natural-reasoning/0000002", "natural-reasoning/0000003",
    ]  # fmt: skip
    ball = next(i for i in items if i.item_id.endswith("0000000"))
    assert ball.reference == "2 seconds"
    assert ball.metadata["response_models"] == ["Llama-3.3-70B-Instruct"]
    assert ball.question.endswith("in the form 'Answer: <answer>'.")
    assert scorer_for(ball).name == "judge"
    assert score_response(ball, "Answer: 2 s") == PENDING_JUDGE


def test_a_record_without_the_column_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "nr.jsonl"
    bad.write_text('{"question": "Why?", "responses": []}\n')
    with pytest.raises(PerwattError, match=rf"^{bad}:1: no column 'reference_answer'"):
        load_workload("natural-reasoning", limit=1, data_file=bad)
