"""GSM8K-style numeric answers: the final number of a response, compared exactly.

Where the final answer is, in order of preference: after the last `####` (GSM8K's own format),
on the last `Answer:` / `Final answer:` line or a line that starts with `A:` (the format of the
GSM8K model solutions), in the last `\\boxed{}`, after the last "the answer is", and otherwise the
last number anywhere in the text. Within an explicit answer, the number read is the first one
after the last `=` ("Answer: 5 + 3 = 8" → 8, "Answer: $18 per day" → 18), so that a marked answer
is read the way a person reads it; an answer written in words ("twelve") is read too.

A number may carry a sign (also the Unicode minus), thousands separators, decimals, a simple
fraction ("3/4"), a currency symbol before it or a unit or `%` after it; it is returned without
separators or sign `+`. Two numbers are equal when they are the same rational number, or within
a relative 1e-6 of each other (a model's 8.333333333333334 for 25/3).

Runs on every response of a numeric workload and on every answer of `benchmarks/bench_extract.py`,
so each step is a `str.rfind` or one compiled regex.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from perwatt.records import Item, Score
from perwatt.scoring import Scorer
from perwatt.scoring.extract import braced

# A number as people write it: thousands separators, decimals, an optional simple fraction.
# A leading "-" is a sign only when it does not follow a word or a closing bracket ("16-3" is a
# subtraction: 16 and 3).
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])[-−])?"
    r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+|(?=\.\d))(?:\.\d+)?"
    r"(?:\s?/\s?\d+(?![\d.,]))?"
)
# Explicit answer lines: "Answer:", "**Final Answer:**", "answer:" anywhere (not the end of a
# longer word), or "A:" at the start of a line (the GSM8K model solutions' format).
_ANSWER_LINE = re.compile(
    r"(?:(?<![^\W\d_])answer|^[ \t*_#>]*a)[ \t*_]*[:：]", re.IGNORECASE | re.MULTILINE
)
_ANSWER_IS = re.compile(r"(?<![^\W\d_])answer\s+is\s*:?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_BOXED = "\\boxed{"
# The calculator annotations of GSM8K solutions ("<<16-3=13>>") repeat the number that follows.
_ANNOTATION = re.compile(r"<<[^<>]*>>")

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_WORD = re.compile(r"[a-z]+")
_INTEGER = re.compile(r"-?\d+$")
# Equal within this relative tolerance, for decimals that stand for a repeating fraction.
REL_TOL = 1e-6


def extract_number(text: str) -> str | None:
    """The final numeric answer in `text`, normalised ("1,234.50" → "1234.50"), or None."""
    if not text:
        return None
    segment = _marked_segment(text)
    if segment is not None:
        found = _number_in_answer(segment)
        if found is not None:
            return found
    numbers = _NUMBER.findall(text)
    return _normalise(numbers[-1]) if numbers else None


def _marked_segment(text: str) -> str | None:
    """The text of the last explicit answer, by marker preference, or None."""
    start = text.rfind("####")
    if start != -1:
        rest = _line_from(text, start + 4)
        if rest:
            return rest
    if ":" in text or "：" in text:
        end = _last_answer_line(text)
        if end != -1:
            rest = _line_from(text, end) or _next_line(text, end)
            if rest:
                return rest
    start = text.rfind(_BOXED)
    while start != -1:
        content = braced(text, start + len(_BOXED))
        if content is not None:
            return content
        start = text.rfind(_BOXED, 0, start)
    lowered = text.lower()
    start = lowered.rfind("answer")
    while start != -1:
        match = _ANSWER_IS.match(text, start)
        if match:
            rest = _line_from(text, match.end())
            return _SENTENCE_END.split(rest, maxsplit=1)[0]
        start = lowered.rfind("answer", 0, start)
    return None


def _last_answer_line(text: str) -> int:
    """Where the answer after the last answer marker starts, or -1.

    Markers are searched from the end with `str.rfind` on a lower-cased copy (a regex scan of the
    whole text costs several times more, and this runs on every response).
    """
    lowered = text.lower()
    if len(lowered) != len(text):  # lower-casing changed lengths: positions do not carry over
        last = None
        for last in _ANSWER_LINE.finditer(text):  # noqa: B007 - only the last one is wanted
            pass
        return last.end() if last is not None else -1
    best = -1
    position = len(lowered)
    while (position := lowered.rfind("answer", 0, position)) != -1:
        match = _ANSWER_LINE.match(text, position)
        if match is not None:
            best = match.end()
            break
    position = len(lowered)
    while (position := _rfind_colon(lowered, position)) > 0:
        # "A:" counts only at the start of a line (after optional markdown).
        line_start = lowered.rfind("\n", 0, position) + 1
        head = lowered[line_start:position]
        if head.rstrip(" \t*_").endswith("a") and not head.rstrip(" \t*_")[:-1].strip(" \t*_#>"):
            return max(best, position + 1)
        if position < best:
            break
    return best


def _rfind_colon(lowered: str, end: int) -> int:
    return max(lowered.rfind(":", 0, end), lowered.rfind("：", 0, end))


def _number_in_answer(segment: str) -> str | None:
    # "5 + 3 = 8" states its result after the last "=".
    cut = segment.rfind("=")
    tail = segment[cut + 1 :] if cut != -1 else segment
    if "<<" in tail:
        tail = _ANNOTATION.sub("", tail)
    match = _NUMBER.search(tail)
    if match:
        return _normalise(match.group())
    return _number_in_words(segment)


def _number_in_words(segment: str) -> str | None:
    """A number written in words, up to ninety-nine ("twelve", "forty-two"), or None."""
    total: int | None = None
    for word in _WORD.findall(segment.lower()):
        if word in _TENS and total is None:
            total = _TENS[word]
        elif word in _UNITS and (total is None or (total >= 20 and total % 10 == 0)):
            total = (total or 0) + _UNITS[word]
        elif total is not None:
            break
    return None if total is None else str(total)


def _normalise(number: str) -> str:
    return number.replace(",", "").replace("−", "-").replace(" ", "").lstrip("+").removesuffix(".")


def _line_from(text: str, start: int) -> str:
    end = text.find("\n", start)
    return (text[start:] if end == -1 else text[start:end]).strip()


def _next_line(text: str, start: int) -> str:
    for line in text[start:].split("\n", 3)[1:3]:
        if line.strip():
            return line.strip()
    return ""


def to_fraction(number: str) -> Fraction | None:
    """An exact value for a normalised number ("12", "-0.5", "3/4"), or None."""
    try:
        return Fraction(number.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(answer: str, reference: str) -> bool:
    """Whether two normalised numbers are the same value (exactly, or within `REL_TOL`)."""
    if answer == reference:
        return True
    if _INTEGER.match(answer) and _INTEGER.match(reference):
        return int(answer) == int(reference)  # the common case, without Fraction's parsing
    a, b = to_fraction(answer), to_fraction(reference)
    if a is None or b is None:
        return answer == reference
    if a == b:
        return True
    return abs(a - b) <= REL_TOL * max(1, abs(b))


@functools.lru_cache(maxsize=4096)
def reference_number(reference: str) -> str | None:
    """The number a reference stands for: a bare number, or a solution's final answer (cached:
    a run asks for the same reference once per answer)."""
    stripped = reference.strip()
    if to_fraction(_normalise(stripped)) is not None:
        return _normalise(stripped)
    return extract_number(reference)


def score(item: Item, response_text: str) -> Score:
    """Correct when the response's final number equals the reference's."""
    answer = extract_number(response_text)
    if answer is None:
        return Score(None, False, 0.0)
    reference = reference_number(item.reference)
    correct = reference is not None and numbers_equal(answer, reference)
    return Score(answer, correct, 1.0 if correct else 0.0)


SCORERS = (Scorer("numeric", "the final number, GSM8K style", score),)
