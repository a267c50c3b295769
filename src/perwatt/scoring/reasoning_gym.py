"""Scoring a reasoning-gym item with that task's own verifier.

The verifier sees the item's `metadata` (the generated entry, after a JSON round trip). Its float
is kept as `score`, but only a full score counts as correct: reasoning-gym gives partial credit,
for instance when the reference is a substring of a longer answer. Two verifiers read a right answer
too literally ("yes" for "Yes", "x = 7" for "7"); those answers are rewritten before verifying.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from perwatt.errors import PerwattError
from perwatt.records import Item, Score
from perwatt.scoring import Scorer
from perwatt.scoring.extract import extract_final_answer

Verifier = Callable[[str | None, dict[str, Any]], float]

_ASSIGNMENT = re.compile(r"([A-Za-z])\s*=\s*(\S.*)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def score(item: Item, response_text: str) -> Score:
    """Extract the answer from `response_text` and let the task's verifier judge it.

    When the reference is a number, an unmarked response is read for its last number. A verifier
    that raises on odd text scores 0 rather than stopping the run.
    """
    answer = extract_final_answer(
        response_text, numeric=_NUMBER.fullmatch(item.reference) is not None
    )
    if answer is None:
        return Score(None, False, 0.0)
    normalise = _NORMALISERS.get(item.task)
    if normalise is not None:
        answer = normalise(answer, item.metadata)
    verify = verifier(item.task)
    try:
        value = float(verify(answer, item.metadata))
    except Exception:
        value = 0.0
    if math.isnan(value):
        value = 0.0
    value = min(max(value, 0.0), 1.0)
    return Score(answer, value >= 1.0, value)


@cache
def verifier(task: str) -> Verifier:
    """The score function reasoning-gym registers for `task` (built once per task)."""
    import reasoning_gym

    try:
        return reasoning_gym.get_score_answer_fn(task)
    except ValueError:
        raise PerwattError(f"reasoning-gym has no task '{task}'") from None


# Answers that are right but that the task's verifier reads too literally. Only unambiguous
# rewrites belong here.
def _yes_no(answer: str, entry: dict[str, Any]) -> str:
    # The syllogism verifier compares exactly, so "yes" would fail against "Yes".
    return answer.capitalize() if answer.lower() in ("yes", "no") else answer


def _solution_value(answer: str, entry: dict[str, Any]) -> str:
    # "x = 7" names the value the equation asks for; the verifier wants "7".
    match = _ASSIGNMENT.fullmatch(answer)
    if match and match.group(1) == entry.get("metadata", {}).get("variable"):
        return match.group(2).strip()
    return answer


_NORMALISERS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "syllogism": _yes_no,
    "simple_equations": _solution_value,
}


SCORERS = (
    Scorer(
        "reasoning-gym",
        "the task's own reasoning-gym verifier",
        score,
        needs_question=True,
        expensive=True,
    ),
)
