"""Which scorer each item gets, the registry of scorers, and the one verdict rule."""

from __future__ import annotations

import pytest

from perwatt.errors import PerwattError
from perwatt.records import Item, Score
from perwatt.scoring import (
    PENDING_JUDGE,
    UNANSWERED,
    get_scorer,
    score_response,
    scorer_for,
    scorers,
    verdict,
)
from perwatt.workloads import workloads


def _item(workload: str, reference: str = "42", scorer: str = "", **metadata: object) -> Item:
    return Item("x/1", workload, workload, "d", "Q?", reference, dict(metadata), scorer=scorer)


def test_every_workload_names_a_registered_scorer() -> None:
    for name, info in workloads().items():
        if name != "file":  # a user's file names a scorer per item
            assert info.scorer in scorers(), name


@pytest.mark.parametrize(
    ("workload", "scorer"),
    [
        ("gsm8k", "numeric"),
        ("math500", "math"),
        ("mmlu-pro", "choice"),
        ("gpqa", "choice"),
        ("simpleqa", "exact"),
        ("natural-reasoning", "judge"),
        ("wildchat", "judge-pairwise"),
        ("reasoning-gym", "reasoning-gym"),
    ],
)
def test_a_workloads_default_scorer_lives_with_it(workload: str, scorer: str) -> None:
    assert workloads()[workload].scorer == scorer


def test_user_file_items_name_their_own_scorer(tmp_path) -> None:
    from perwatt.workloads import load_workload

    data = tmp_path / "mine.jsonl"
    data.write_text('{"q": "2+2?", "a": "4"}\n{"q": "Capital of France?", "a": "Paris"}\n'
                    '{"q": "x^2?", "a": "x^2"}\n')  # fmt: skip
    items = load_workload("file:question=q,answer=a", limit=3, data_file=data)
    assert sorted(i.scorer for i in items) == ["exact", "exact", "numeric"]
    named = load_workload("file:question=q,answer=a,scorer=math", limit=3, data_file=data)
    assert {i.scorer for i in named} == {"math"}


def test_another_scorer_can_be_named() -> None:
    item = _item("simpleqa", "1,648", "exact")
    assert score_response(item, "It was in 1648.", "numeric") == Score("1648", True, 1.0)
    assert score_response(item, "It was in 1648.").correct is False  # exact: the whole line


def test_judge_scorers_leave_a_row_for_the_judge() -> None:
    assert score_response(_item("wildchat", "Hello", "judge-pairwise"), "Hi there") == PENDING_JUDGE
    assert score_response(_item("gsm8k", scorer="numeric"), "Answer: 42", "judge") == PENDING_JUDGE
    # An empty answer needs no judge to be wrong.
    assert score_response(_item("wildchat", "Hello", "judge-pairwise"), "  ") == UNANSWERED


def test_only_a_complete_answer_can_be_correct() -> None:
    item = _item("gsm8k", "42", "numeric")
    assert verdict(item, "ok", "Answer: 42") == Score("42", True, 1.0)
    # Cut off by the token limit: the answer is kept, the verdict is incorrect.
    assert verdict(item, "truncated", "Answer: 42") == Score("42", False, 1.0)
    assert verdict(item, "error", "Answer: 42") == UNANSWERED
    assert verdict(item, "timeout", "Answer: 42") == UNANSWERED
    judged = _item("wildchat", "Hello", "judge-pairwise")
    assert verdict(judged, "ok", "Hi") == PENDING_JUDGE
    assert verdict(judged, "truncated", "Hi").correct is False


def test_unknown_scorer_and_workload_are_user_errors() -> None:
    with pytest.raises(PerwattError, match="unknown scorer 'fuzzy'"):
        score_response(_item("gsm8k", scorer="numeric"), "1", "fuzzy")
    with pytest.raises(PerwattError, match="names no scorer"):
        scorer_for(_item("gsm9k"))
    with pytest.raises(PerwattError, match="unknown scorer 'fuzzy'; known: choice"):
        get_scorer("fuzzy")
