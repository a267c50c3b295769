"""The offline default workload: a fixed, seeded mix of easy reasoning-gym tasks.

reasoning-gym generates every item procedurally and ships a verifier per task, so the default
needs no download and every answer is checked by the task's own code. The settings are
deliberately easy (one- or two-digit numbers, short words, few items to sort): the packaged models
have 135M and 270M parameters, and a mix they always fail would measure nothing. Each setting was
also chosen so that the task's verifier is sound there (see the notes in DEFAULT_TASKS).

This module imports reasoning-gym lazily: naming the mix (DEFAULT_TASKS, domains()) costs nothing,
generating it costs about a second of imports.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perwatt.errors import PerwattError
from perwatt.records import Example, Item
from perwatt.workloads.common import ANSWER_FORMAT, EXAMPLES_PER_ITEM, WorkloadInfo

if TYPE_CHECKING:
    from reasoning_gym.dataset import ProceduralDataset

WORKLOAD = "reasoning-gym"
INFO = WorkloadInfo(
    WORKLOAD,
    "procedurally generated reasoning tasks (tiers easy/medium/hard, any task)",
    "reasoning-gym",
    "generated offline",
    options="easy | medium | hard | TASK[@LEVEL][(key=value,...)],...",
    generated=True,
)

# reasoning-gym seeds item i of a dataset with Random(seed + i), so two datasets whose seeds are
# close share items. Each (task, workload seed) pair gets its own block of this many seeds: items
# use the bottom half, few-shot examples the top half.
_SEED_STRIDE = 1_000_003
_EXAMPLE_SEED_OFFSET = _SEED_STRIDE // 2
# Candidates for the few-shot examples, so that two can always be found that differ from the item.
_EXAMPLE_POOL = 2 * EXAMPLES_PER_ITEM + 2
# Draws tried for a question not yet in the load before a repeat is accepted (small tasks such as
# one-digit sums have only a few hundred distinct questions).
_DISTINCT_TRIES = 50


@dataclass(frozen=True)
class TaskSpec:
    """One reasoning-gym task of the mix: its domain, its (easy) generator settings and why."""

    task: str
    domain: str
    config: Mapping[str, Any]
    description: str


# One task per domain first, so that any six consecutive items cover all six domains.
DEFAULT_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "chain_sum",
        "arithmetic",
        {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2},
        "sums and differences of 2-3 numbers of 1-2 digits",
    ),
    TaskSpec(
        "letter_counting",
        "counting",
        {"min_words": 1, "max_words": 3},
        "how often a letter occurs in 1-3 words",
    ),
    TaskSpec(
        "spell_backward",
        "strings",
        # Words of at most 5 letters: for 9- and 11-letter words the verifier's float sum gives a
        # prefix-extended wrong answer a score above 1.0.
        {"min_word_len": 3, "max_word_len": 5},
        "spell a word of 3-5 letters backward",
    ),
    TaskSpec(
        "word_sorting",
        "sorting",
        # Lower case, so that ASCII order (what the verifier checks) is alphabetical order.
        {
            "min_words": 3,
            "max_words": 4,
            "min_word_length": 3,
            "max_word_length": 6,
            "transformation": "lowercase",
        },
        "sort 3-4 lower-case words of 3-6 letters, ascending or descending",
    ),
    TaskSpec(
        "simple_equations",
        "algebra",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_value": 1,
            "max_value": 10,
            "operators": ["+", "-"],
            "operators_weights": [0.5, 0.5],
        },
        "solve x + a = b or a - x = b with a, b, x up to 10",
    ),
    TaskSpec(
        "syllogism",
        "logic",
        # Only 'All'/'No' premises and no inversions: with 'Some' the generator labels invalid
        # syllogisms (undistributed middle) as valid, and inversions depend on existential import.
        # Half valid, half invalid, so answering 'Yes' every time scores 50%, not 70%.
        {
            "allow_some": False,
            "allow_some_not": False,
            "inversion_probability": 0.0,
            "invalid_ratio": 0.5,
        },
        "does a two-premise All/No syllogism follow (Yes/No)",
    ),
    TaskSpec(
        "basic_arithmetic",
        "arithmetic",
        # Two terms only: without parentheses the generator evaluates left to right, ignoring
        # precedence, and writes the wrong divisor for '/'.
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        "one +, - or * on two numbers from 0 to 10",
    ),
    TaskSpec(
        "leg_counting",
        "counting",
        {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 3},
        "total legs of 1-3 animals of 1-2 kinds",
    ),
    TaskSpec(
        "word_sequence_reversal",
        "strings",
        {"min_words": 3, "max_words": 4},
        "reverse a list of 3-4 words",
    ),
)


def domains(tasks: tuple[TaskSpec, ...] = DEFAULT_TASKS) -> list[str]:
    """The domains a mix covers, in order of first appearance."""
    return list(dict.fromkeys(t.domain for t in tasks))


def load(limit: int, seed: int = 0, data_file: object = None, options: str = "") -> list[Item]:
    """The workload registry's entry: the mix or selection `options` names (see
    `parse_selection`)."""
    import importlib.util

    if importlib.util.find_spec("reasoning_gym") is None:
        raise PerwattError(
            "the reasoning-gym workload needs the 'reasoning-gym' package; "
            "install perwatt with the 'local' extra (`pip install 'perwatt[local]'`)"
        )
    return load_tasks(limit, seed, parse_selection(options))


def load_tasks(
    limit: int, seed: int = 0, tasks: tuple[TaskSpec, ...] = DEFAULT_TASKS
) -> list[Item]:
    """The first `limit` items of the mix, tasks interleaved round-robin.

    The same seed gives the same items in every process, and a smaller limit gives a prefix of a
    larger one. Within a task, questions do not repeat while distinct ones can be found.
    """
    per_task = -(-limit // len(tasks))
    columns = [_task_items(spec, seed, per_task) for spec in tasks]
    rows = (column[i] for i in range(per_task) for column in columns)
    return [item for _, item in zip(range(limit), rows, strict=False)]


def _task_items(spec: TaskSpec, seed: int, count: int) -> list[Item]:
    base = zlib.crc32(spec.task.encode()) + seed * _SEED_STRIDE
    entries = _distinct_entries(_dataset(spec, base), count)
    shots = [_jsonable(e) for e in _dataset(spec, base + _EXAMPLE_SEED_OFFSET, _EXAMPLE_POOL)]
    items = []
    for index, entry in enumerate(entries):
        examples = [s for s in shots if s["question"] != entry["question"]][:EXAMPLES_PER_ITEM]
        items.append(
            Item(
                item_id=f"{spec.task}/{index:04d}",
                workload=WORKLOAD,
                task=spec.task,
                domain=spec.domain,
                question=_question(entry["question"]),
                reference=str(entry["answer"]),
                metadata=entry,
                examples=tuple(
                    Example(_question(s["question"]), str(s["answer"])) for s in examples
                ),
            )
        )
    return items


def _distinct_entries(dataset: ProceduralDataset, count: int) -> list[dict[str, Any]]:
    # Skipping repeats only looks at earlier draws, so the first n entries never depend on count.
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    index = 0
    while len(entries) < count:
        for _ in range(_DISTINCT_TRIES):
            entry = dataset[index]
            index += 1
            if entry["question"] not in seen:
                break
        seen.add(entry["question"])
        entries.append(_jsonable(entry))
    return entries


def _dataset(spec: TaskSpec, seed: int, size: int = 1_000) -> ProceduralDataset:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    _, config_cls = DATASETS[spec.task]
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    config = dict(spec.config)
    for name, value in config.items():
        # Settings are plain data (so the mix can be printed); enum fields need their enum back.
        if isinstance(defaults.get(name), enum.Enum):
            config[name] = type(defaults[name])(value)
    return reasoning_gym.create_dataset(spec.task, seed=seed, size=size, **config)


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    # Items travel through JSON (checkpoints, re-scoring): give the verifier exactly what survives.
    return json.loads(json.dumps(entry, default=_plain))


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _question(raw: str) -> str:
    return f"{raw.rstrip()}\n\n{ANSWER_FORMAT}"


# --- named tiers and task selection -------------------------------------------------------------
# The same nine tasks at growing difficulty. Only settings where the task's verifier stays sound
# are used (see the notes in DEFAULT_TASKS): words spelled backward stay at 3-5 letters, basic
# arithmetic at two terms without '/', syllogisms at All/No premises, and sorted words lower case.
# `tests/workloads/test_reasoning_gym_selection.py` checks every tier's references and verifiers.

MEDIUM_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "chain_sum",
        "arithmetic",
        {"min_terms": 3, "max_terms": 4, "min_digits": 2, "max_digits": 3},
        "sums and differences of 3-4 numbers of 2-3 digits",
    ),
    TaskSpec(
        "letter_counting",
        "counting",
        {"min_words": 4, "max_words": 8},
        "how often a letter occurs in 4-8 words",
    ),
    TaskSpec(
        "spell_backward",
        "strings",
        {"min_word_len": 4, "max_word_len": 5},
        "spell a word of 4-5 letters backward",
    ),
    TaskSpec(
        "word_sorting",
        "sorting",
        {
            "min_words": 5,
            "max_words": 7,
            "min_word_length": 3,
            "max_word_length": 8,
            "transformation": "lowercase",
        },
        "sort 5-7 lower-case words of 3-8 letters, ascending or descending",
    ),
    TaskSpec(
        "simple_equations",
        "algebra",
        {
            "min_terms": 2,
            "max_terms": 3,
            "min_value": 1,
            "max_value": 30,
            "operators": ["+", "-", "*"],
            "operators_weights": [0.4, 0.4, 0.2],
        },
        "solve a linear equation of 2-3 terms with values up to 30",
    ),
    DEFAULT_TASKS[5],  # syllogism: its only sound setting
    TaskSpec(
        "basic_arithmetic",
        "arithmetic",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 2,
            "max_digits": 2,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        "one +, - or * on two numbers of 2 digits",
    ),
    TaskSpec(
        "leg_counting",
        "counting",
        {"min_animals": 2, "max_animals": 4, "min_instances": 1, "max_instances": 6},
        "total legs of 1-6 animals of 2-4 kinds",
    ),
    TaskSpec(
        "word_sequence_reversal",
        "strings",
        {"min_words": 5, "max_words": 8},
        "reverse a list of 5-8 words",
    ),
)

HARD_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "chain_sum",
        "arithmetic",
        {"min_terms": 4, "max_terms": 6, "min_digits": 3, "max_digits": 4},
        "sums and differences of 4-6 numbers of 3-4 digits",
    ),
    TaskSpec(
        "letter_counting",
        "counting",
        {"min_words": 8, "max_words": 15},
        "how often a letter occurs in 8-15 words",
    ),
    TaskSpec(
        "spell_backward",
        "strings",
        {"min_word_len": 5, "max_word_len": 5},
        "spell a word of 5 letters backward",
    ),
    TaskSpec(
        "word_sorting",
        "sorting",
        {
            "min_words": 8,
            "max_words": 12,
            "min_word_length": 3,
            "max_word_length": 12,
            "transformation": "lowercase",
        },
        "sort 8-12 lower-case words of 3-12 letters, ascending or descending",
    ),
    TaskSpec(
        "simple_equations",
        "algebra",
        {
            "min_terms": 3,
            "max_terms": 4,
            "min_value": 1,
            "max_value": 100,
            "operators": ["+", "-", "*"],
            "operators_weights": [0.35, 0.35, 0.3],
        },
        "solve a linear equation of 3-4 terms with values up to 100",
    ),
    DEFAULT_TASKS[5],
    TaskSpec(
        "basic_arithmetic",
        "arithmetic",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 3,
            "max_digits": 4,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        "one +, - or * on two numbers of 3-4 digits",
    ),
    TaskSpec(
        "leg_counting",
        "counting",
        {"min_animals": 3, "max_animals": 6, "min_instances": 1, "max_instances": 12},
        "total legs of up to 12 animals each of 3-6 kinds",
    ),
    TaskSpec(
        "word_sequence_reversal",
        "strings",
        {"min_words": 8, "max_words": 12},
        "reverse a list of 8-12 words",
    ),
)

TIERS: dict[str, tuple[TaskSpec, ...]] = {
    "easy": DEFAULT_TASKS,
    "medium": MEDIUM_TASKS,
    "hard": HARD_TASKS,
}

_LEVEL = re.compile(r"^([a-z0-9_]+)@(\d+)$")
_SETTINGS = re.compile(r"^([a-z0-9_]+)\((.*)\)$", re.DOTALL)


def parse_selection(spec: str) -> tuple[TaskSpec, ...]:
    """The tasks named after `reasoning-gym:`.

    - nothing: the default mix (the `easy` tier); a tier name: `easy`, `medium`, `hard`;
    - a comma-separated list of tasks, each as one of:
      `chain_sum` (the mix's vetted settings for its tasks, reasoning-gym's defaults otherwise),
      `chain_sum@3` (the task's reasoning-gym curriculum at level 3),
      `chain_sum(max_terms=4,max_digits=3)` (settings over the vetted or default ones; values are
      JSON, else text).

    Settings outside the tiers are not vetted: a task's verifier may be unsound there (see the
    notes in DEFAULT_TASKS).
    """
    spec = spec.strip()
    if not spec:
        return DEFAULT_TASKS
    if spec in TIERS:
        return TIERS[spec]
    tasks: list[TaskSpec] = []
    for part in _split_top_level(spec):
        task = _task_spec(part)
        if any(t.task == task.task for t in tasks):
            raise PerwattError(f"reasoning-gym task '{task.task}' is named twice")
        tasks.append(task)
    return tuple(tasks)


def _split_top_level(spec: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in spec:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    if depth != 0 or not all(parts):
        raise PerwattError(f"cannot read the reasoning-gym selection '{spec}'")
    return parts


def _task_spec(part: str) -> TaskSpec:
    if match := _LEVEL.match(part):
        name, level = match.group(1), int(match.group(2))
        base = _base_spec(name)
        return TaskSpec(
            name, base.domain, _curriculum_config(name, level), f"curriculum level {level}"
        )
    if match := _SETTINGS.match(part):
        name = match.group(1)
        base = _base_spec(name)
        settings = dict(base.config)
        for item in filter(None, (s.strip() for s in _split_top_level(match.group(2)))):
            key, sep, value = item.partition("=")
            if not sep:
                raise PerwattError(f"reasoning-gym setting '{item}' of {name}: expected KEY=VALUE")
            settings[key.strip()] = _value(value.strip())
        spec = TaskSpec(name, base.domain, settings, "custom settings")
        _check_settings(spec)
        return spec
    if not re.fullmatch(r"[a-z0-9_]+", part):
        raise PerwattError(f"cannot read the reasoning-gym task '{part}'")
    return _base_spec(part)


def _base_spec(name: str) -> TaskSpec:
    """The mix's vetted spec for `name`, else the task with reasoning-gym's default settings."""
    for spec in DEFAULT_TASKS:
        if spec.task == name:
            return spec
    from reasoning_gym.factory import DATASETS

    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PerwattError(f"reasoning-gym has no task '{name}'{hint}")
    dataset_cls, _ = DATASETS[name]
    # reasoning_gym.<category>.<module>: the category is the domain.
    domain = dataset_cls.__module__.split(".")[1]
    return TaskSpec(name, domain, {}, "reasoning-gym's default settings")


def _curriculum_config(name: str, level: int) -> dict[str, Any]:
    from reasoning_gym.factory import CURRICULA, create_curriculum

    if name not in CURRICULA:
        raise PerwattError(f"reasoning-gym task '{name}' has no curriculum: name its settings")
    curriculum = create_curriculum(name)
    highest = max((len(a.levels) - 1 for a in curriculum.attributes.values()), default=0)
    if level > highest:
        raise PerwattError(f"reasoning-gym task '{name}' has curriculum levels 0-{highest}")
    for attribute, definition in curriculum.attributes.items():
        curriculum.set_attr_level(attribute, min(level, len(definition.levels) - 1))
    config = curriculum.generate_configuration({})
    return {
        f.name: _jsonable(getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.name not in ("seed", "size")
    }


def _check_settings(spec: TaskSpec) -> None:
    from reasoning_gym.factory import DATASETS

    _, config_cls = DATASETS[spec.task]
    known = {f.name for f in dataclasses.fields(config_cls)} - {"seed", "size"}
    unknown = sorted(set(spec.config) - known)
    if unknown:
        raise PerwattError(
            f"reasoning-gym task '{spec.task}' has no setting {', '.join(unknown)} "
            f"(settings: {', '.join(sorted(known))})"
        )
    try:
        _dataset(spec, 0, size=1)[0]
    except Exception as exc:  # reasoning-gym validates with assert and ValueError alike
        raise PerwattError(f"reasoning-gym task '{spec.task}': invalid settings ({exc})") from None


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
