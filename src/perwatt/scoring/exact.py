"""Normalised exact match of a short final answer (SimpleQA, user files with text answers).

The final answer is found as for any response (`extract.py`: the last `Answer:` line, an
`<answer>` tag, `\\boxed{}`, "the answer is", else the last line). Answer and reference are then
compared after the normalisation of SQuAD's evaluation script, extended to Unicode: accents and
case folded, punctuation and the articles "a", "an", "the" dropped, white space collapsed. So
"Wilhelm Conrad Röntgen." matches "wilhelm conrad rontgen", but "Paris, France" does not match
"Paris": no partial credit. When both sides are numbers they are compared as numbers ("1,000" and
"1000.0" match).
"""

from __future__ import annotations

import re
import unicodedata

from perwatt.records import Item, Score
from perwatt.scoring import Scorer
from perwatt.scoring.extract import extract_final_answer
from perwatt.scoring.numeric import numbers_equal, to_fraction

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"^[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def normalise_text(text: str) -> str:
    """Lower-case, without accents, punctuation, articles or extra white space."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    kept = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category == "Mn":  # combining accents
            continue
        # Punctuation and symbols separate words ("covid-19" → "covid 19").
        kept.append(" " if category[0] in "PS" else char)
    cleaned = _ARTICLES.sub(" ", "".join(kept))
    return _SPACES.sub(" ", cleaned).strip()


def texts_equal(answer: str, reference: str) -> bool:
    """Whether two short answers say the same thing, after normalisation."""
    a, b = answer.strip(), reference.strip()
    if _NUMBER.match(a) and _NUMBER.match(b):
        a_number = a.replace(",", "").replace("−", "-").lstrip("+")
        b_number = b.replace(",", "").replace("−", "-").lstrip("+")
        if to_fraction(a_number) is not None and to_fraction(b_number) is not None:
            return numbers_equal(a_number, b_number)
    return normalise_text(a) == normalise_text(b) and bool(normalise_text(b))


def score(item: Item, response_text: str) -> Score:
    """Correct when the final answer equals the reference after normalisation."""
    answer = extract_final_answer(response_text)
    if answer is None:
        return Score(None, False, 0.0)
    correct = texts_equal(answer, item.reference)
    return Score(answer, correct, 1.0 if correct else 0.0)


SCORERS = (Scorer("exact", "the final answer equal to the reference after normalisation", score),)
