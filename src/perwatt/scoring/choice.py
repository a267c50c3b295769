"""Multiple-choice answers: which option letter a response chose (MMLU-Pro, GPQA).

The final answer is found as for any response (`Answer:` line, `<answer>` tag, `\\boxed{}`,
"the answer is", else the last line; see `extract.py`), then read for a letter: "C", "(C)",
"C.", "C) 42", "**C**", "Option C", "\\text{C}", or the full text of one of the options. Only when
that fails is the final line searched for one standalone option letter, and the pronoun "I" and
the article "A" ("A cat") do not count there. A response naming two different letters there
chose nothing. Unlike the MMLU-Pro reference script, no letter is picked out of the reasoning:
a letter the response did not state as its answer is not its answer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from perwatt.records import Item, Score
from perwatt.scoring import Scorer
from perwatt.scoring.extract import extract_final_answer

LETTERS = string.ascii_uppercase
_LEADING = re.compile(
    r"^(?:\\text(?:bf)?\{)?(?:(?:option|choice|answer)\s*:?\s*)?"
    r"[(\[]?([A-Za-z])[)\]]?(?:\})?(?=$|[\s.):,;\]])",
    re.IGNORECASE,
)
_NAMED = re.compile(r"(?:option|choice|answer)\s*(?:is\s*)?:?\s*\(?([A-Z])\)?(?![\w])", re.I)
_STANDALONE = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
# "A"/"I" followed by a lower-case word is the article or the pronoun ("A cat", "I think"),
# unless the word is one that follows an option letter ("A or B", "A is correct").
_ARTICLE = re.compile(
    r"\s+(?!(?:or|and|is|was|would|seems|appears|because|since|as|best|correct|then|are|has)\b)"
    r"[a-z]"
)
_SPACES = re.compile(r"\s+")
_ALTERNATIVE = re.compile(r"[)\]]?\s*(?:or|and|,|/|&)\s*[(\[]?[A-Z](?![\w'])")


def extract_choice(text: str, n_options: int, options: Sequence[str] = ()) -> str | None:
    """The option letter (A, B, ...) that `text` gives as its answer, or None.

    `n_options` bounds the letters (4: A-D); `options`, when given, lets an answer that repeats
    an option's text count as that option's letter.
    """
    found = extract_final_answer(text)
    if found is None:
        return None
    valid = LETTERS[:n_options]
    match = _LEADING.match(found)
    if match:
        letter = match.group(1)
        # A lower-case letter only counts when it is the whole answer ("c", "(c)").
        if (
            letter.upper() in valid
            and (letter.isupper() or len(found) <= 3)
            and not _is_word(found, match)
        ):
            # "A or B", "A, C": more than one option is no choice.
            return None if _ALTERNATIVE.match(found, match.end(1)) else letter.upper()
    if options:
        by_text = _option_by_text(found, options)
        if by_text is not None:
            return by_text
    named = {m.group(1).upper() for m in _NAMED.finditer(found)} & set(valid)
    if len(named) == 1:
        return named.pop()
    standalone = {
        m.group(1)
        for m in _STANDALONE.finditer(found)
        if m.group(1) in valid and not _is_word(found, m)
    }
    return standalone.pop() if len(standalone) == 1 else None


def _is_word(text: str, match: re.Match[str]) -> bool:
    # "I think..." and "A cat..." use the letter as a word.
    return match.group(1) in "AI" and _ARTICLE.match(text, match.end(1)) is not None


def _option_by_text(found: str, options: Sequence[str]) -> str | None:
    wanted = _plain(found)
    hits = [LETTERS[i] for i, option in enumerate(options) if _plain(option) == wanted]
    return hits[0] if len(hits) == 1 else None


def _plain(text: str) -> str:
    return _SPACES.sub(" ", text.strip().strip(".").strip()).casefold()


def score(item: Item, response_text: str) -> Score:
    """Correct when the chosen letter is the reference letter.

    The item's metadata may list the options (`options`); otherwise ten letters (A-J) are valid.
    """
    options = item.metadata.get("options") or ()
    n_options = len(options) if options else 10
    letter = extract_choice(response_text, n_options, options)
    if letter is None:
        return Score(None, False, 0.0)
    correct = letter == item.reference.strip().upper()
    return Score(letter, correct, 1.0 if correct else 0.0)


SCORERS = (
    Scorer("choice", "the option letter of a multiple-choice answer", score, needs_question=True),
)
