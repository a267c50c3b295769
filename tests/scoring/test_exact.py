"""Normalised exact match of short answers."""

from __future__ import annotations

import pytest

from perwatt.records import Item, Score
from perwatt.scoring import score_response
from perwatt.scoring.exact import normalise_text, texts_equal


@pytest.mark.parametrize(
    ("answer", "reference", "equal"),
    [
        ("Wilhelm Conrad Röntgen.", "wilhelm conrad rontgen", True),
        ("The Lake Baikal", "Lake Baikal", True),
        ("  Michio   Sugeno ", "Michio Sugeno", True),
        ("COVID-19", "covid 19", True),
        ("1,648", "1648", True),
        ("1648.0", "1648", True),
        ("Paris, France", "Paris", False),  # no partial credit
        ("1649", "1648", False),
        ("the", "a", False),  # nothing left of either: not a match
    ],
)
def test_texts_equal(answer: str, reference: str, equal: bool) -> None:
    assert texts_equal(answer, reference) is equal


def test_normalise_text() -> None:
    assert normalise_text("  The Ångström—unit! ") == "angstrom unit"


def test_simpleqa_scoring_reads_the_answer_line() -> None:
    item = Item(
        "simpleqa/0000", "simpleqa", "Person", "Science", "Who?", "Michio Sugeno", scorer="exact"
    )
    assert score_response(item, "Let me recall.\nAnswer: **Michio Sugeno**") == Score(
        "Michio Sugeno", True, 1.0
    )
    assert score_response(item, "Answer: Lotfi Zadeh").correct is False
