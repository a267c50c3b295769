"""Scoring: extract the answer from a response and decide whether it is correct.

Scorers are a registry: every module of this package that defines `SCORERS` (a tuple of
`Scorer`) is one — `reasoning_gym` (the task's own verifier), `numeric` (the final number,
GSM8K style), `choice` (an option letter), `mathexpr` (`math`: the last `\\boxed{}`, compared
symbolically under a time limit), `exact` (the normalised final answer) and `judge` (`judge` /
`judge-pairwise`: an LLM judge, asked after the run by `perwatt score`, never while the model
under test is measured). Adding a scorer is adding a module; an unknown name is an error, never
a silent fallback.

Each item names its scorer (`Item.scorer`, the workload's default unless its source names one).
`verdict` is the one rule that turns a response into a row's answer and correctness: only a
complete answer (status `ok`) can be correct; an error or timeout has no answer; a truncated
answer is scored (its answer is kept) but is never correct.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from perwatt.errors import PerwattError
from perwatt.records import Item, Score, Status
from perwatt.scoring.extract import extract_final_answer

UNANSWERED = Score(answer=None, correct=False, score=0.0)
# A judge-scored response before the judge has seen it: neither right nor wrong yet.
PENDING_JUDGE = Score(answer=None, correct=None, score=None)


@dataclass(frozen=True)
class Scorer:
    """One way of deciding answers.

    `score` is None for a judge (decided after the run). `needs_question`: it reads more of the
    item than its reference (the question, or a verifier's metadata), so it cannot score a run
    whose items are lost. `expensive`: it may take long on one answer (symbolic algebra, some
    verifiers), so the runner calls it off the event loop.
    """

    name: str
    description: str
    score: Callable[[Item, str], Score] | None
    needs_question: bool = False
    expensive: bool = False

    @property
    def is_judge(self) -> bool:
        return self.score is None


@cache
def scorers() -> dict[str, Scorer]:
    """Every scorer, by name, from the modules of this package that define `SCORERS`."""
    found: dict[str, Scorer] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        for scorer in getattr(importlib.import_module(f"{__name__}.{module.name}"), "SCORERS", ()):
            if scorer.name in found:
                raise RuntimeError(f"two scorers are named {scorer.name!r}")
            found[scorer.name] = scorer
    return dict(sorted(found.items()))


def get_scorer(name: str) -> Scorer:
    """The scorer called `name`; an unknown name is a user error listing the known ones."""
    try:
        return scorers()[name]
    except KeyError:
        raise PerwattError(f"unknown scorer '{name}'; known: {', '.join(scorers())}") from None


def scorer_for(item: Item, override: str | None = None) -> Scorer:
    """The scorer that decides `item`'s answers: `override` if given, else the item's own."""
    name = override or item.scorer
    if not name:
        raise PerwattError(f"item '{item.item_id}' names no scorer: pass --scorer NAME")
    return get_scorer(name)


def score_response(item: Item, response_text: str, scorer: str | None = None) -> Score:
    """Score one complete response with `scorer` (default: the item's own).

    An empty or blank response scores 0 without consulting any scorer; a judge returns
    `PENDING_JUDGE`.
    """
    chosen = scorer_for(item, scorer)
    if not response_text or response_text.isspace():
        return UNANSWERED
    if chosen.score is None:
        return PENDING_JUDGE
    return chosen.score(item, response_text)


def verdict(item: Item, status: Status, response_text: str, scorer: str | None = None) -> Score:
    """A row's answer, correctness and score, by the one rule every row follows (see above)."""
    if status not in ("ok", "truncated"):
        return UNANSWERED
    result = score_response(item, response_text, scorer)
    if status == "ok":
        return result
    # Cut off by the token limit: incorrect whatever its answer, also when a judge would say yes.
    return Score(result.answer, False, 0.0 if result.score is None else result.score)


__all__ = [
    "PENDING_JUDGE",
    "UNANSWERED",
    "Scorer",
    "extract_final_answer",
    "get_scorer",
    "score_response",
    "scorer_for",
    "scorers",
    "verdict",
]
