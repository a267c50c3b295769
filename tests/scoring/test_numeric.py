"""GSM8K-style numeric extraction and equality (pure string handling)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perwatt.records import Item, Score
from perwatt.scoring import score_response
from perwatt.scoring.numeric import extract_number, numbers_equal, reference_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # GSM8K's own marker, and the model-solutions' "A:" line.
        ("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("So 16 - 3 = 13\nA: 13", "13"),
        ("A: $1,000,000.", "1000000"),
        ("a: 7", "7"),
        # Answer lines in any markdown.
        ("Answer: 42", "42"),
        ("**Final Answer:** 3.5", "3.5"),
        ("Answer:\n\n12", "12"),
        ("Answer: 5 + 3 = 8", "8"),
        ("Answer: $18 per day", "18"),
        ("Answer: 18 (9 * 2)", "18"),
        ("Answer: 25%", "25"),
        ("Answer: −7", "-7"),
        ("Answer: twelve", "12"),
        ("Answer: forty-two apples", "42"),
        ("Answer: 3/4", "3/4"),
        # A later Answer line wins over an earlier one.
        ("Answer: 3\nWait, that is wrong.\nAnswer: 4", "4"),
        # \boxed{} and "the answer is".
        ("so we get \\boxed{1,250}.", "1250"),
        ("The answer is 7 apples. Then 9 more.", "7"),
        # No marker: the last number of the text.
        ("16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars.", "18"),
        ("The total is 16-3", "3"),
        ("x = -5", "-5"),
        ("We get .5 of them", ".5"),
        ("We get 3.5.", "3.5"),
        # "Option A:" in a sentence is not an answer line, but "answer:" is.
        ("Option A: 5 apples, so the final answer: 6", "6"),
    ],
)
def test_extracts_the_final_number(text: str, expected: str) -> None:
    assert extract_number(text) == expected


@pytest.mark.parametrize("text", ["", "no number here", "Answer: I do not know"])
def test_no_number_is_none(text: str) -> None:
    assert extract_number(text) is None


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("18", "18.00", True),
        ("1234", "1234", True),
        ("0.5", "1/2", True),
        ("8.333333333333334", "25/3", True),
        ("-3", "3", False),
        ("18", "19", False),
        ("33.33", "100/3", False),  # rounded to two places is not the same value
    ],
)
def test_numbers_are_compared_as_values(a: str, b: str, equal: bool) -> None:
    assert numbers_equal(a, b) is equal


def test_a_reference_may_be_a_whole_solution() -> None:
    assert reference_number("Janet sells 9 eggs.\nA: 2,125") == "2125"
    assert reference_number("2,125") == "2125"
    assert reference_number("#### -4") == "-4"


def _item(reference: str) -> Item:
    return Item(
        "gsm8k/0000", "gsm8k", "gsm8k", "math word problems", "Q?", reference, scorer="numeric"
    )


def test_gsm8k_scoring() -> None:
    assert score_response(_item("18"), "9 * 2 = 18\nAnswer: $18.00") == Score("18.00", True, 1.0)
    assert score_response(_item("18"), "Answer: 17") == Score("17", False, 0.0)
    assert score_response(_item("18"), "I cannot tell") == Score(None, False, 0.0)
    assert score_response(_item("18"), "   ") == Score(None, False, 0.0)


@given(prefix=st.text(max_size=200), value=st.integers(-(10**9), 10**9))
def test_the_number_after_a_final_gsm8k_marker_is_found(prefix: str, value: int) -> None:
    assert numbers_equal(extract_number(f"{prefix}\n#### {value:,}") or "", str(value))


@given(text=st.text(max_size=300))
def test_never_raises_and_returns_a_number_or_none(text: str) -> None:
    found = extract_number(text)
    assert found is None or numbers_equal(found, found)


_MARKUP = st.sampled_from(["A:", "a :", "Answer:", "answer**:", " *A:", "\n", "#", "Option A:",
                           "ANSWER :", "reanswer:", "：", "x", " ", "18", "İ"])  # fmt: skip


@given(parts=st.lists(_MARKUP, max_size=12))
def test_the_fast_marker_search_finds_what_the_regex_finds(parts: list[str]) -> None:
    from perwatt.scoring.numeric import _ANSWER_LINE, _last_answer_line

    text = "".join(parts)
    matches = list(_ANSWER_LINE.finditer(text))
    assert _last_answer_line(text) == (matches[-1].end() if matches else -1)
