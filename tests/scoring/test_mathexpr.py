"""LaTeX answers: extraction, normalisation and symbolic equivalence in a time-bounded process."""

from __future__ import annotations

import pytest

from perwatt.records import Item, Score
from perwatt.scoring import score_response
from perwatt.scoring.mathexpr import (
    SympyWorker,
    Verdict,
    equivalent,
    extract_math_answer,
    normalise,
    to_sympy_source,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        (
            "\\boxed{1} then \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
            "\\left( 3, \\frac{\\pi}{2} \\right)",
        ),
        ("Truncated \\boxed{3} and \\boxed{4", "3"),
        ("\\fbox{7}", "7"),
        ("The final answer is \\boxed 5", "5"),
        ("No box.\nAnswer: 12", "12"),
        ("", None),
    ],
)
def test_extracts_the_last_box(text: str, expected: str | None) -> None:
    assert extract_math_answer(text) == expected


@pytest.mark.parametrize(
    ("latex", "expected"),
    [
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\dfrac12", "\\frac{1}{2}"),
        ("90^\\circ", "90"),
        ("\\$18.90", "18.90"),
        ("10\\%", "10"),
        ("4\\text{ cm}^2", "4"),
        ("12 \\text{ inches}", "12"),
        ("\\text{Evelyn}", "Evelyn"),
        ("x = 3", "3"),
        ("1,000", "1000"),
        ("3/4", "\\frac{3}{4}"),
        (".5", "0.5"),
        ("\\sqrt3", "\\sqrt{3}"),
    ],
)
def test_normalise(latex: str, expected: str) -> None:
    assert normalise(latex) == expected


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("\\dfrac{14}{3}", "\\frac{14}{3}"),
        ("0.5", "\\frac12"),
        ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("-5, 2", "2, -5"),  # a bare list in any order
        ("[-2, 7]", "[-2,7]"),
        ("(x+2)(x+5)", "x^2+7x+10"),
        ("\\sqrt{12}", "2\\sqrt{3}"),
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt{2}/2"),
        ("-5i + 6", "6-5i"),
        ("e^{i\\pi}", "-1"),
        ("\\pi r^2", "r^2\\pi"),
        ("y = 2x + 3", "2x+3"),
    ],
)
def test_equivalent_answers(answer: str, reference: str) -> None:
    assert equivalent(answer, reference) is Verdict.EQUAL


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("(1,2]", "[1,2]"),  # an interval's brackets matter
        ("(2, -5)", "(-5, 2)"),  # a tuple's order matters
        ("3x", "x"),
        ("0.333", "\\frac{1}{3}"),
        ("1, 2", "1, 2, 3"),
        ("\\text{Evelyn}", "Evelyn Smith"),
    ],
)
def test_different_answers(answer: str, reference: str) -> None:
    assert equivalent(answer, reference) is Verdict.DIFFERENT


@pytest.mark.parametrize(
    "hostile",
    ["__import__('os').system('true')", "x.__class__", "a'b", "exec(1)", "lambda: 1"],
)
def test_only_plain_expressions_reach_sympy(hostile: str) -> None:
    source = to_sympy_source(normalise(hostile))
    assert source is None or ("_" not in source and "'" not in source and "." not in source)


@pytest.mark.timeout(120)
def test_a_pathological_expression_is_killed_at_the_time_limit() -> None:
    worker = SympyWorker()
    try:
        # Evaluating 9^(9^(9^9)) would take CPython's big integers practically forever.
        slow = to_sympy_source(normalise("9^{9^{9^{9}}}"))
        assert slow is not None
        assert worker.compare(slow, "1", timeout_s=1.0) is Verdict.TIMED_OUT
        assert worker.pid is None  # killed, not left running
        # The next comparison starts a fresh process and works.
        assert worker.compare("sqrt(12)", "2*sqrt(3)", timeout_s=60.0) is Verdict.EQUAL
    finally:
        worker.close()


def test_math500_scoring() -> None:
    item = Item("math500/x", "math500", "level 2", "Algebra", "Expand.", "x^2+7x+10", scorer="math")
    text = "Multiplying out, we get $\\boxed{x^2 + 10 + 7x}$."
    assert score_response(item, text) == Score("x^2 + 10 + 7x", True, 1.0)
    assert score_response(item, "\\boxed{x^2+7x+11}").correct is False
    assert score_response(item, "I give up.").correct is False
