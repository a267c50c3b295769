"""Multiple-choice letters (pure string handling)."""

from __future__ import annotations

import pytest

from perwatt.records import Item, Score
from perwatt.scoring import score_response
from perwatt.scoring.choice import extract_choice

OPTIONS = ["London", "Paris", "Rome", "Berlin"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: C", "C"),
        ("answer: c", "C"),
        ("**Answer: D) Berlin**", "D"),
        ("The answer is (B).", "B"),
        ("Reasoning about A and B...\nAnswer: (A)", "A"),
        ("Answer: \\boxed{C}", "C"),
        ("The answer is \\boxed{\\text{C}}", "C"),
        ("Option B is right.\nAnswer: Option B", "B"),
        ("I think the correct choice is B", "B"),
        ("so B.", "B"),
        ("Answer: Paris", "B"),  # the text of an option
        ("<answer>D</answer>", "D"),
    ],
)
def test_extracts_the_chosen_letter(text: str, expected: str) -> None:
    assert extract_choice(text, 4, OPTIONS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I am not sure.",
        "Answer: E",  # out of range for four options
        "Answer: A or B",  # two letters: no choice
        "A cat sat on the mat",  # the article, not option A
        "I think so",  # the pronoun, not option I
    ],
)
def test_no_clear_choice_is_none(text: str) -> None:
    assert extract_choice(text, 4, OPTIONS) is None


def test_ten_options_allow_letters_to_j() -> None:
    assert extract_choice("Answer: J", 10) == "J"
    assert extract_choice("Answer: J", 4) is None


def test_scoring_against_the_reference_letter() -> None:
    item = Item(
        "mmlu-pro/1",
        "mmlu-pro",
        "src",
        "physics",
        "Q",
        "C",
        {"options": OPTIONS[:3]},
        scorer="choice",
    )
    assert score_response(item, "Answer: C") == Score("C", True, 1.0)
    assert score_response(item, "Answer: B") == Score("B", False, 0.0)
    assert score_response(item, "Answer: D") == Score(None, False, 0.0)  # only three options
    assert score_response(item, "Answer: Rome") == Score("C", True, 1.0)
