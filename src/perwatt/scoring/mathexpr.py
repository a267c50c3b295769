"""LaTeX final answers (MATH-500): the last `\\boxed{}`, normalised, compared symbolically.

Extraction: the last `\\boxed{...}` or `\\fbox{...}` with balanced braces, else the final answer
of `extract.py` (an `Answer:` line, "the final answer is $x$", ...).

Equivalence, cheapest first:
1. the normalised strings are equal (normalisation after Hendrycks et al.'s MATH `is_equiv` and
   Minerva's `normalize_final_answer`: `\\left`/`\\right`, `\\dfrac`, spacing commands, degrees,
   `\\%`, `\\$`, `\\text{}` and trailing units, "x = 5", `\\frac12`, `a/b`, thousands separators);
2. tuples, intervals and lists are compared element by element (a bare list "2, -5" in any
   order; brackets must agree: `(1, 2]` is not `[1, 2]`);
3. plain numbers ("0.5", "\\frac{1}{2}", "-3") are compared exactly, in this process;
4. anything else is translated to sympy's syntax and compared by value and by `simplify(a - b)`
   in a separate process (`sympy_worker.py`) under a hard time limit: an expression that takes
   longer is killed with its process and counts as not shown equal (`Verdict.TIMED_OUT`).
"""

from __future__ import annotations

import atexit
import enum
import json
import os
import re
import select
import subprocess
import sys
import threading
from fractions import Fraction

from perwatt.records import Item, Score
from perwatt.scoring import Scorer
from perwatt.scoring.extract import braced, extract_final_answer

# Seconds one sympy comparison may take before its process is killed.
DEFAULT_TIMEOUT_S = 5.0
# Seconds the worker may take to start (importing sympy on a busy machine).
_STARTUP_TIMEOUT_S = 120.0
# Elements of a tuple or list compared one by one; longer answers are compared as strings only.
_MAX_ELEMENTS = 12
# Longer sources are not handed to sympy (a long answer is a wrong answer, not a puzzle to solve).
_MAX_SOURCE_CHARS = 400


class Verdict(enum.Enum):
    """The outcome of an equivalence check."""

    EQUAL = "equal"
    DIFFERENT = "different"
    TIMED_OUT = "timed out"


# --- extraction --------------------------------------------------------------------------------

_BOX_MARKERS = ("\\boxed{", "\\fbox{")
_BOXED_SPACE = re.compile(r"\\boxed ([^\s$]+)")


def extract_math_answer(text: str) -> str | None:
    """The content of the last `\\boxed{}` in `text`, else its marked final answer."""
    if not text or text.isspace():
        return None
    best: tuple[int, str] | None = None
    for marker in _BOX_MARKERS:
        end = len(text)
        while (start := text.rfind(marker, 0, end)) != -1:
            content = braced(text, start + len(marker))
            if content is not None:
                if best is None or start > best[0]:
                    best = (start, content.strip())
                break
            end = start
    if best is not None and best[1]:
        return best[1]
    spaced = _BOXED_SPACE.findall(text)
    if spaced:
        return spaced[-1]
    return extract_final_answer(text)


# --- normalisation -----------------------------------------------------------------------------

_REMOVED = (
    "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\ ", "~",
    "\\left", "\\right", "^{\\circ}", "^\\circ", "°", "\\$", "$", "\\%", "%",
    "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big",
)  # fmt: skip
_SUBSTITUTIONS = (
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cdot", "*"), ("\\times", "*"),
    ("\\div", "/"), ("−", "-"), ("\\leq", "≤"), ("\\geq", "≥"), ("\\neq", "≠"),
)  # fmt: skip
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")
# Words that follow a number as its unit; removed at the end of an answer (Minerva's list, cut).
_UNIT_WORDS = (
    "square", "sq", "units", "unit", "degrees", "degree", "cm", "centimeters", "meters", "meter",
    "m", "km", "inches", "inch", "in", "feet", "foot", "ft", "yards", "miles", "mph", "hours",
    "hour", "minutes", "minute", "seconds", "second", "days", "day", "weeks", "years", "dollars",
    "dollar", "cents", "cent", "pounds", "ways", "students", "people", "points", "mm", "liters",
    "grams", "kg", "sides", "edges", "faces", "numbers", "integers", "terms",
)  # fmt: skip
_UNIT = r"(?:" + "|".join(_UNIT_WORDS) + r")(?:\^?\{?[23]\}?)?"
# A unit in \text{} ("4\text{ cm}^2"), or a unit word after a space ("4 cm").
_TEXT_UNITS = re.compile(r"\\(?:text|mbox|mathrm)\{\s*" + _UNIT + r"\s*\}(?:\^\{?[23]\}?)?\s*$")
_TRAILING_UNITS = re.compile(r"(?<=[\d}).])(?:\s+" + _UNIT + r")+\s*$")
_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_FRAC_HALF_SHORT = re.compile(r"\\frac(\{[^{}]*\})(\d)|\\frac(\d)(\{[^{}]*\})")
_SQRT_SHORT = re.compile(r"\\sqrt(\w)")
_A_SLASH_B = re.compile(r"^(-?\d+)/(\d+)$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(.+)$")
_SPACE = re.compile(r"\s+")


def normalise(answer: str) -> str:
    """A canonical spelling of a LaTeX answer, for string comparison."""
    s = answer.strip().replace("\n", " ")
    for old in _REMOVED:
        s = s.replace(old, "")
    for old, new in _SUBSTITUTIONS:
        s = s.replace(old, new)
    s = s.replace("\\\\", "\\")
    s = _TEXT_UNITS.sub("", s)
    previous = None
    while previous != s:  # unwrap nested \text{} commands
        previous = s
        s = _TEXT_COMMAND.sub(r"\1", s)
    s = s.strip()
    s = _TRAILING_UNITS.sub("", s).strip()
    match = _ASSIGNMENT.match(s)
    if match and "," not in s:
        s = match.group(1)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _SPACE.sub("", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_HALF_SHORT.sub(_fix_half_short_frac, s)
    s = s.rstrip(".")
    if s.startswith("."):
        s = "0" + s
    s = s.replace("{.", "{0.").replace("(.", "(0.").replace(",.", ",0.")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    slash = _A_SLASH_B.match(s)
    if slash:
        s = f"\\frac{{{slash.group(1)}}}{{{slash.group(2)}}}"
    return s


def _fix_half_short_frac(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"\\frac{match.group(1)}{{{match.group(2)}}}"
    return f"\\frac{{{match.group(3)}}}{match.group(4)}"


# --- equivalence -------------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "\\{": "\\}"}
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_SIMPLE_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$")


def equivalent(answer: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """Whether two LaTeX answers are the same mathematical object."""
    a, b = normalise(answer), normalise(reference)
    if a == b:
        return Verdict.EQUAL
    a_parts, a_brackets = _split(a)
    b_parts, b_brackets = _split(b)
    if len(a_parts) > 1 or len(b_parts) > 1:
        if len(a_parts) != len(b_parts) or len(a_parts) > _MAX_ELEMENTS:
            return Verdict.DIFFERENT
        if a_brackets != b_brackets:
            # An interval's brackets say which ends belong to it.
            return Verdict.DIFFERENT
        return _parts_equivalent(a_parts, b_parts, ordered=a_brackets != ("", ""), t=timeout_s)
    return _element_equivalent(a, b, timeout_s)


def _parts_equivalent(a: list[str], b: list[str], *, ordered: bool, t: float) -> Verdict:
    if ordered:
        worst = Verdict.EQUAL
        for x, y in zip(a, b, strict=True):
            verdict = _element_equivalent(x, y, t)
            if verdict is not Verdict.EQUAL:
                return verdict
        return worst
    # An unbracketed list ("2, -5"): each answer element matches a distinct reference element.
    remaining = list(b)
    timed_out = False
    for x in a:
        for index, y in enumerate(remaining):
            verdict = _element_equivalent(x, y, t)
            if verdict is Verdict.EQUAL:
                del remaining[index]
                break
            timed_out = timed_out or verdict is Verdict.TIMED_OUT
        else:
            return Verdict.TIMED_OUT if timed_out else Verdict.DIFFERENT
    return Verdict.EQUAL


def _element_equivalent(a: str, b: str, timeout_s: float) -> Verdict:
    if a == b:
        return Verdict.EQUAL
    a_value, b_value = _exact_number(a), _exact_number(b)
    if a_value is not None and b_value is not None:
        return Verdict.EQUAL if a_value == b_value else Verdict.DIFFERENT
    a_source, b_source = to_sympy_source(a), to_sympy_source(b)
    if a_source is None or b_source is None:
        return Verdict.DIFFERENT
    return _worker().compare(a_source, b_source, timeout_s)


def _exact_number(s: str) -> Fraction | None:
    if _PLAIN_NUMBER.match(s):
        return Fraction(s)
    match = _SIMPLE_FRAC.match(s)
    if match and int(match.group(3)) != 0:
        value = Fraction(int(match.group(2)), int(match.group(3)))
        return -value if match.group(1) else value
    return None


def _split(s: str) -> tuple[list[str], tuple[str, str]]:
    """Top-level comma-separated parts, and the brackets around them ("" when none)."""
    brackets = ("", "")
    inner = s
    for opening, closing in (("(", ")"), ("[", "]"), ("(", "]"), ("[", ")"), ("\\{", "\\}")):
        if s.startswith(opening) and s.endswith(closing) and _encloses(s, opening, closing):
            brackets = (opening, closing)
            inner = s[len(opening) : len(s) - len(closing)]
            break
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in inner:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if len(parts) == 1:
        return [s], ("", "")
    return parts, brackets


def _encloses(s: str, opening: str, closing: str) -> bool:
    """Whether the first bracket of `s` closes only at its very end ("(1,2)" yes, "(1)(2)" no)."""
    depth = 0
    body = s[len(opening) - 1 : len(s) - len(closing) + 1]
    for index, char in enumerate(body):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(body) - 1:
                return False
    return depth == 0


# --- LaTeX to sympy syntax ---------------------------------------------------------------------

_FUNCTIONS = {
    "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp",
    "asin", "acos", "atan", "sinh", "cosh", "tanh",
}  # fmt: skip
_COMMANDS = {
    "\\pi": " pi ", "\\infty": " oo ", "\\ln": " log ", "\\log": " log ", "\\exp": " exp ",
    "\\sin": " sin ", "\\cos": " cos ", "\\tan": " tan ", "\\cot": " cot ", "\\sec": " sec ",
    "\\csc": " csc ", "\\arcsin": " asin ", "\\arccos": " acos ", "\\arctan": " atan ",
    "\\sinh": " sinh ", "\\cosh": " cosh ", "\\tanh": " tanh ",
}  # fmt: skip
_SAFE = re.compile(r"^[0-9A-Za-z+\-*/^(). ]*$")
_IDENT = re.compile(r"[A-Za-z]+")
_PI_BEFORE_WORD = re.compile(r"\\(pi|infty)(?=[A-Za-z])")


def to_sympy_source(latex: str) -> str | None:
    """`latex` (normalised) in sympy's input syntax, or None when it is not a plain expression.

    Only numbers, single-letter symbols, a few known functions, operators and parentheses are
    emitted, because sympy's parser evaluates what it is given.
    """
    if not latex or len(latex) > _MAX_SOURCE_CHARS or "=" in latex or "_" in latex:
        return None
    s = _PI_BEFORE_WORD.sub(r"\\\1 ", latex)
    s = _replace_frac(s)
    if s is None:
        return None
    s = _replace_sqrt(s)
    if s is None:
        return None
    for command, replacement in sorted(_COMMANDS.items(), key=lambda kv: -len(kv[0])):
        s = s.replace(command, replacement)
    if "\\" in s:
        return None  # an unknown command: not a plain expression
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    if not _SAFE.match(s) or s.count("(") != s.count(")"):
        return None
    s = _IDENT.sub(_identifier, s)
    if s.lstrip().startswith(("*", "/")) or "***" in s:
        return None
    return s


def _identifier(match: re.Match[str]) -> str:
    word = match.group()
    if word in _FUNCTIONS or word in ("pi", "oo"):
        return word
    if word == "i":
        return "I"
    if word == "e":
        return "E"
    # "xy" is x times y, as in implicit multiplication.
    return "*".join(word)


def _replace_frac(s: str) -> str | None:
    while (start := s.find("\\frac")) != -1:
        numerator = _group_at(s, start + len("\\frac"))
        if numerator is None:
            return None
        num_text, after_num = numerator
        denominator = _group_at(s, after_num)
        if denominator is None:
            return None
        den_text, end = denominator
        s = f"{s[:start]}(({num_text})/({den_text})){s[end:]}"
    return s


def _replace_sqrt(s: str) -> str | None:
    while (start := s.find("\\sqrt")) != -1:
        position = start + len("\\sqrt")
        root = None
        if s.startswith("[", position):
            close = s.find("]", position)
            if close == -1:
                return None
            root = s[position + 1 : close]
            position = close + 1
        radicand = _group_at(s, position)
        if radicand is None:
            return None
        text, end = radicand
        body = f"sqrt({text})" if root is None else f"(({text})**(1/({root})))"
        s = f"{s[:start]}{body}{s[end:]}"
    return s


def _group_at(s: str, position: int) -> tuple[str, int] | None:
    """The braced group (or single character) at `position`, and the index after it."""
    if position >= len(s):
        return None
    if s[position] != "{":
        return s[position], position + 1
    content = braced(s, position + 1)
    if content is None:
        return None
    return content, position + 1 + len(content) + 1


# --- the worker process ------------------------------------------------------------------------


class SympyWorker:
    """A sympy process that compares two sources at a time, killed when one overruns its limit."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def compare(self, a_source: str, b_source: str, timeout_s: float) -> Verdict:
        """EQUAL or DIFFERENT from sympy, or TIMED_OUT (the process is then killed)."""
        with self._lock:
            process = self._ensure_started()
            if process is None:
                return Verdict.DIFFERENT
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps([a_source, b_source]) + "\n")
                process.stdin.flush()
            except OSError:
                self._stop()
                return Verdict.DIFFERENT
            line = _read_line(process, timeout_s)
            if line is None:
                self._stop()
                return Verdict.TIMED_OUT
            return Verdict.EQUAL if line.strip() == "true" else Verdict.DIFFERENT

    def _ensure_started(self) -> subprocess.Popen[str] | None:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._process = subprocess.Popen(
            [sys.executable, "-m", "perwatt.scoring.sympy_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        ready = _read_line(self._process, _STARTUP_TIMEOUT_S)
        if ready is None or ready.strip() != '"ready"':
            self._stop()
            return None
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        """Stop the process (it restarts on the next comparison)."""
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        """The worker's pid while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str | None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        return None
    line = process.stdout.readline()
    return line or None


_WORKER: SympyWorker | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> SympyWorker:
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = SympyWorker()
            atexit.register(_WORKER.close)
        return _WORKER


# --- scoring -----------------------------------------------------------------------------------


def score(item: Item, response_text: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Score:
    """Correct when the response's final answer is equivalent to the reference."""
    answer = extract_math_answer(response_text)
    if answer is None:
        return Score(None, False, 0.0)
    reference = extract_math_answer(item.reference) if "\\boxed" in item.reference else None
    verdict = equivalent(answer, reference or item.reference, timeout_s=timeout_s)
    correct = verdict is Verdict.EQUAL
    return Score(answer, correct, 1.0 if correct else 0.0)


SCORERS = (
    Scorer(
        "math",
        "the last \\boxed{} answer, compared symbolically under a time limit",
        score,
        expensive=True,
    ),
)
