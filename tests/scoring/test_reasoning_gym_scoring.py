"""Scoring reasoning-gym items with the real verifiers (no mocks)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from perwatt.errors import PerwattError
from perwatt.records import Item, Score
from perwatt.scoring import score_response
from perwatt.scoring.reasoning_gym import verifier
from perwatt.workloads import load_workload


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return load_workload("reasoning-gym", limit=50, seed=0)


def _revived(item: Item) -> Item:
    """The item as it comes back from a checkpoint: metadata through JSON once more."""
    return dataclasses.replace(item, metadata=json.loads(json.dumps(item.metadata)))


def test_every_reference_is_correct_after_a_json_round_trip(items: list[Item]) -> None:
    for item in items:
        score = score_response(_revived(item), f"blah\nAnswer: {item.reference}")
        assert score == Score(item.reference, True, 1.0), item.item_id


def test_a_wrong_answer_is_incorrect(items: list[Item]) -> None:
    for item in items:
        score = score_response(item, "Answer: definitely-not-it")
        assert not score.correct and score.score < 1.0, item.item_id


def test_partial_credit_is_kept_as_score_but_never_counts_as_correct(items: list[Item]) -> None:
    partial = 0
    for item in items:
        # The reference inside a longer answer: reasoning-gym's substring / prefix partial credit.
        score = score_response(item, f"Answer: {item.reference} or so")
        assert not score.correct, item.item_id
        assert 0.0 <= score.score < 1.0
        partial += score.score > 0.0
    assert partial >= len(items) // 2  # the verifiers do give partial credit; it is not counted


def test_a_prefix_extended_backward_spelling_is_incorrect(items: list[Item]) -> None:
    spelled = [i for i in items if i.task == "spell_backward"]
    assert spelled
    for item in spelled:
        score = score_response(item, f"Answer: {item.reference}s")
        assert not score.correct and score.score < 1.0, item.item_id
        # The verifier itself is case-insensitive, so this one is right.
        assert score_response(item, f"Answer: {item.reference.upper()}").correct


def test_empty_and_blank_responses_score_zero(items: list[Item]) -> None:
    for text in ("", "   \n\t"):
        assert score_response(items[0], text) == Score(None, False, 0.0)


def test_yes_and_no_are_accepted_in_any_case(items: list[Item]) -> None:
    logic = next(i for i in items if i.task == "syllogism")
    other = "No" if logic.reference == "Yes" else "Yes"
    for written in (logic.reference, logic.reference.lower(), logic.reference.upper()):
        assert score_response(logic, f"Answer: {written}").correct, written
    assert not score_response(logic, f"Answer: {other.lower()}").correct


def test_an_equation_answer_may_name_its_variable(items: list[Item]) -> None:
    equation = next(i for i in items if i.task == "simple_equations")
    variable = equation.metadata["metadata"]["variable"]
    other = "q" if variable != "q" else "z"
    assert score_response(equation, f"Answer: {variable} = {equation.reference}").correct
    assert not score_response(equation, f"Answer: {other} = {equation.reference}").correct


def test_an_unmarked_numeric_response_is_read_for_its_last_number(items: list[Item]) -> None:
    for item in items:
        if item.task in ("chain_sum", "basic_arithmetic", "leg_counting", "letter_counting"):
            last_line = item.metadata["question"].splitlines()[-1]
            worked = f"Let me work it out.\n{last_line} {{}}"
            assert score_response(item, worked.format(item.reference)).correct, item.item_id
            wrong = worked.format(int(item.reference) + 1)
            assert not score_response(item, wrong).correct, item.item_id


def test_an_unmarked_word_response_is_taken_whole(items: list[Item]) -> None:
    spelled = next(i for i in items if i.task == "spell_backward")
    assert score_response(spelled, f"Here it is:\n{spelled.reference}").correct
    assert not score_response(spelled, f"The word backward is {spelled.reference}").correct


def test_chain_sum_tolerates_number_formatting(items: list[Item]) -> None:
    item = next(i for i in items if i.task == "chain_sum")
    assert score_response(item, f"Answer: {item.reference}.0").correct


def test_a_verifier_that_raises_scores_zero_instead_of_crashing(items: list[Item]) -> None:
    sorting = next(i for i in items if i.task == "word_sorting")
    broken = dataclasses.replace(sorting, metadata={"question": "?", "answer": "a"})
    with pytest.raises(KeyError):  # the real verifier does raise on this entry...
        verifier("word_sorting")("a", broken.metadata)
    # ...and scoring survives it.
    assert score_response(broken, "Answer: a") == Score("a", False, 0.0)


def test_the_verifier_is_built_once_per_task() -> None:
    assert verifier("chain_sum") is verifier("chain_sum")


def test_unknown_task_and_scorer_are_user_errors(items: list[Item]) -> None:
    with pytest.raises(PerwattError, match="no task 'no_such_task'"):
        score_response(dataclasses.replace(items[0], task="no_such_task"), "Answer: 1")
    with pytest.raises(PerwattError, match="unknown scorer 'gsm9k'"):
        score_response(dataclasses.replace(items[0], scorer="gsm9k"), "Answer: 1")
