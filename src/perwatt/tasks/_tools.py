"""The tools a model may call in a tool-use task, and the harness's way of running them.

- `calculator`: an arithmetic expression, parsed with `ast.parse(mode="eval")` and walked node by
  node: numbers, `+ - * / // % **`, unary `+ -` and parentheses, nothing else (no names, calls,
  attributes or subscripts: never `eval` or `exec`). Every value is bounded (|x| ≤ `MAX_VALUE`,
  exponents |e| ≤ `MAX_EXPONENT`, `MAX_EXPRESSION_CHARS`, `MAX_DEPTH`), so no input can make it
  compute for long or build a huge number.
- `convert_units`: a value from one unit to another of the same kind (length, mass, time,
  volume, temperature), with exact factors (the international yard and pound, the US gallon)
  in rational arithmetic; temperatures are affine.

`TOOLS` is the registry (name → `Tool`); `tool_specs()` is the request's `tools` field;
`execute(name, arguments_json)` runs one call as the model sent it and never raises: an unknown
tool, arguments that are not a JSON object or lack a field or have one of the wrong type, and a
tool that fails are each a `ToolResult` with `ok=False` and an `error: …` message for the model.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from perwatt.errors import PerwattError

MAX_EXPRESSION_CHARS = 1000
MAX_DEPTH = 100  # nesting of the expression's syntax tree
MAX_EXPONENT = 100
MAX_VALUE = 1e100  # the largest magnitude of any number, given or computed
MAX_ARGUMENTS_CHARS = 10_000  # a call's arguments JSON


class ToolError(Exception):
    """A tool could not do what it was asked; the message is fit to show the model."""


@dataclass(frozen=True)
class Tool:
    """A tool: its name, what the model is told about it, the JSON schema of its arguments, and
    `run`, which takes arguments already checked against that schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], str]

    def spec(self) -> dict[str, Any]:
        """The tool as an entry of the request's `tools` list (an OpenAI function tool)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": json.loads(json.dumps(self.parameters)),  # a copy to keep
            },
        }


@dataclass(frozen=True)
class ToolResult:
    """One call, run: `content` is what goes back to the model as the tool message (the result,
    or `error: …`); `error` is the failure (None when ok); `wall_s` the time it took."""

    ok: bool
    content: str
    error: str | None
    wall_s: float


# --- calculator ---------------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
# Symbols a model may write for the operators (×, ÷, the minus sign).
_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "−": "-"})
_ALLOWED = "numbers, + - * / // % ** and parentheses"


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression (Python's arithmetic, bounded); ToolError else."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    source = expression.translate(_SYMBOLS).strip()
    if not source:
        raise ToolError("the expression is empty")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise ToolError("not an arithmetic expression") from None
    return _value(tree.body, 0)


def _value(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise ToolError(f"the expression is nested more than {MAX_DEPTH} deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if value.__class__ not in (int, float):  # bool, str, complex, None, bytes, Ellipsis
            raise ToolError(f"{_source(node)} is not a number; only {_ALLOWED} are allowed")
        return _bounded(value)
    if isinstance(node, ast.BinOp):
        apply = _BINARY.get(type(node.op))
        if apply is None:
            hint = " (use ** for a power)" if isinstance(node.op, ast.BitXor) else ""
            raise ToolError(f"the operator {_source(node)!r} is not allowed{hint}; "
                            f"only {_ALLOWED} are")  # fmt: skip
        left = _value(node.left, depth + 1)
        right = _value(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"the exponent {_number(right)} is over {MAX_EXPONENT}")
        try:
            result = apply(left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError(f"a value is over {MAX_VALUE:g}") from None
        if result.__class__ is complex:  # a negative number to a fractional power
            raise ToolError(f"{_source(node)} is not a real number")
        return _bounded(result)
    if isinstance(node, ast.UnaryOp):
        apply_unary = _UNARY.get(type(node.op))
        if apply_unary is None:
            raise ToolError(f"the operator in {_source(node)!r} is not allowed; "
                            f"only {_ALLOWED} are")  # fmt: skip
        return _bounded(apply_unary(_value(node.operand, depth + 1)))
    what = type(node).__name__
    raise ToolError(f"{what.lower()} ({_source(node)!r}) is not allowed; only {_ALLOWED} are")


def _bounded(value: int | float) -> int | float:
    if value.__class__ is float and not math.isfinite(value):
        raise ToolError("the result is not a finite number")
    if abs(value) > MAX_VALUE:
        raise ToolError(f"a value is over {MAX_VALUE:g} in magnitude")
    return value


def _source(node: ast.AST) -> str:
    """A node's source for a message, cut short."""
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        return type(node).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def _number(value: int | float) -> str:
    """A number as the model is told it: integers without a fraction, floats shortest-exact."""
    if value.__class__ is float and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value) if value.__class__ is float else str(value)


def _run_calculator(arguments: dict[str, Any]) -> str:
    return _number(calculate(arguments["expression"]))


# --- unit conversion ----------------------------------------------------------------------------

# kind → unit → (factor to the kind's base unit, names it goes by). Exact: 1 in = 0.0254 m,
# 1 lb = 0.45359237 kg, 1 US gal = 3.785411784 L.
_UNITS: dict[str, dict[str, tuple[Fraction, tuple[str, ...]]]] = {
    "length": {
        "m": (Fraction(1), ("meter", "meters", "metre", "metres")),
        "km": (Fraction(1000), ("kilometer", "kilometers", "kilometre", "kilometres")),
        "cm": (Fraction(1, 100), ("centimeter", "centimeters", "centimetre", "centimetres")),
        "mm": (Fraction(1, 1000), ("millimeter", "millimeters", "millimetre", "millimetres")),
        "in": (Fraction(254, 10000), ("inch", "inches")),
        "ft": (Fraction(3048, 10000), ("foot", "feet")),
        "yd": (Fraction(9144, 10000), ("yard", "yards")),
        "mi": (Fraction(1609344, 1000), ("mile", "miles")),
    },
    "mass": {
        "kg": (Fraction(1), ("kilogram", "kilograms")),
        "g": (Fraction(1, 1000), ("gram", "grams")),
        "mg": (Fraction(1, 1000000), ("milligram", "milligrams")),
        "t": (Fraction(1000), ("tonne", "tonnes", "metric ton", "metric tons")),
        "lb": (Fraction(45359237, 100000000), ("lbs", "pound", "pounds")),
        "oz": (Fraction(45359237, 1600000000), ("ounce", "ounces")),
    },
    "time": {
        "s": (Fraction(1), ("sec", "second", "seconds")),
        "ms": (Fraction(1, 1000), ("millisecond", "milliseconds")),
        "min": (Fraction(60), ("minute", "minutes")),
        "h": (Fraction(3600), ("hr", "hour", "hours")),
        "day": (Fraction(86400), ("d", "days")),
        "week": (Fraction(604800), ("weeks",)),
    },
    "volume": {
        "l": (Fraction(1), ("liter", "liters", "litre", "litres")),
        "ml": (Fraction(1, 1000), ("milliliter", "milliliters", "millilitre", "millilitres")),
        "m3": (Fraction(1000), ("cubic meter", "cubic meters", "cubic metre", "cubic metres")),
        "gal": (Fraction(3785411784, 1000000000), ("gallon", "gallons")),
        "qt": (Fraction(3785411784, 4000000000), ("quart", "quarts")),
        "pt": (Fraction(3785411784, 8000000000), ("pint", "pints")),
        "cup": (Fraction(3785411784, 16000000000), ("cups",)),
        "fl_oz": (Fraction(3785411784, 128000000000), ("fl oz", "fluid ounce", "fluid ounces")),
    },
    # Temperatures: (offset, scale) to kelvin, K = (x + offset) × scale; see _to_kelvin.
    "temperature": {
        "K": (Fraction(1), ("kelvin",)),
        "C": (Fraction(1), ("celsius", "°c", "degc")),
        "F": (Fraction(5, 9), ("fahrenheit", "°f", "degf")),
    },
}
_KELVIN_OFFSET = {"K": Fraction(0), "C": Fraction(27315, 100), "F": Fraction(45967, 100)}
# Every accepted spelling (lower case) → (kind, unit symbol).
_NAMES: dict[str, tuple[str, str]] = {
    name.lower(): (kind, symbol)
    for kind, units in _UNITS.items()
    for symbol, (_, aliases) in units.items()
    for name in (symbol, *aliases)
}


def _unit(name: str) -> tuple[str, str]:
    found = _NAMES.get(" ".join(name.strip().lower().split()))
    if found is None:
        known = "; ".join(f"{kind}: {', '.join(units)}" for kind, units in _UNITS.items())
        raise ToolError(f"unknown unit {name[:40]!r}; units: {known}")
    return found


def convert(value: int | float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit`, in `to_unit` (correctly rounded from exact arithmetic)."""
    if not math.isfinite(value) or abs(value) > MAX_VALUE:
        raise ToolError(f"the value must be a finite number of magnitude at most {MAX_VALUE:g}")
    kind, source = _unit(from_unit)
    to_kind, target = _unit(to_unit)
    if kind != to_kind:
        raise ToolError(f"cannot convert {source} ({kind}) to {target} ({to_kind})")
    exact = Fraction(value)
    if kind == "temperature":
        kelvin = (exact + _KELVIN_OFFSET[source]) * _UNITS[kind][source][0]
        if kelvin < 0:
            raise ToolError(f"{_number(value)} {source} is below absolute zero")
        result = kelvin / _UNITS[kind][target][0] - _KELVIN_OFFSET[target]
    else:
        result = exact * _UNITS[kind][source][0] / _UNITS[kind][target][0]
    return float(result)


def _run_convert(arguments: dict[str, Any]) -> str:
    value = arguments["value"]
    _, source = _unit(arguments["from_unit"])
    _, target = _unit(arguments["to_unit"])
    result = convert(value, arguments["from_unit"], arguments["to_unit"])
    return f"{_number(value)} {source} = {_number(result)} {target}"


# --- the registry -------------------------------------------------------------------------------

CALCULATOR = Tool(
    name="calculator",
    description=(
        "Evaluate an arithmetic expression and return its value. Numbers, + - * / // % ** "
        "and parentheses only, e.g. (12 + 30) * 7 / 2."
    ),
    parameters={
        "type": "object",
        "properties": {
            "expression": {"type": "string", "description": "The expression, e.g. 17 * 23"}
        },
        "required": ["expression"],
        "additionalProperties": False,
    },
    run=_run_calculator,
)
CONVERT_UNITS = Tool(
    name="convert_units",
    description=(
        "Convert a value from one unit to another of the same kind. Units: length m km cm mm "
        "in ft yd mi; mass kg g mg t lb oz; time s ms min h day week; volume l ml m3 gal qt pt "
        "cup fl_oz; temperature C F K."
    ),
    parameters={
        "type": "object",
        "properties": {
            "value": {"type": "number", "description": "The value to convert"},
            "from_unit": {"type": "string", "description": "Its unit, e.g. mi"},
            "to_unit": {"type": "string", "description": "The unit wanted, e.g. km"},
        },
        "required": ["value", "from_unit", "to_unit"],
        "additionalProperties": False,
    },
    run=_run_convert,
)
TOOLS: Mapping[str, Tool] = MappingProxyType({t.name: t for t in (CALCULATOR, CONVERT_UNITS)})


def tool_specs(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The request's `tools` field for these tools (all of them, in registry order, for None)."""
    chosen = list(TOOLS) if names is None else list(names)
    unknown = [n for n in chosen if n not in TOOLS]
    if unknown:
        raise PerwattError(f"unknown tool {unknown[0]!r}; tools: {', '.join(TOOLS)}")
    return [TOOLS[name].spec() for name in chosen]


def execute(call_name: str, arguments_json: str) -> ToolResult:
    """Run one tool call as the model sent it. Never raises: every failure is an ok=False
    result whose content (`error: …`) tells the model what was wrong."""
    started = time.perf_counter()
    try:
        content = _execute(call_name, arguments_json)
    except ToolError as exc:
        return _failed(str(exc), started)
    except Exception as exc:  # a tool's own bug must not end the task either
        return _failed(f"{call_name} failed: {type(exc).__name__}: {str(exc)[:200]}", started)
    return ToolResult(ok=True, content=content, error=None, wall_s=time.perf_counter() - started)


def _failed(message: str, started: float) -> ToolResult:
    return ToolResult(ok=False, content=f"error: {message}", error=message,
                      wall_s=time.perf_counter() - started)  # fmt: skip


def _execute(call_name: str, arguments_json: str) -> str:
    tool = TOOLS.get(call_name) if isinstance(call_name, str) else None
    if tool is None:
        shown = call_name[:40] if isinstance(call_name, str) else call_name
        raise ToolError(f"unknown tool {shown!r}; tools: {', '.join(TOOLS)}")
    if not isinstance(arguments_json, str):
        raise ToolError(f"{tool.name}: the arguments must be JSON text")
    if len(arguments_json) > MAX_ARGUMENTS_CHARS:
        raise ToolError(f"{tool.name}: the arguments are over {MAX_ARGUMENTS_CHARS} characters")
    try:
        arguments = json.loads(arguments_json) if arguments_json.strip() else {}
    except ValueError as exc:
        raise ToolError(f"{tool.name}: the arguments are not JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise ToolError(f"{tool.name}: the arguments are nested too deeply") from None
    if not isinstance(arguments, dict):
        raise ToolError(f"{tool.name}: the arguments must be a JSON object, "
                        f"not {_json_kind(arguments)}")  # fmt: skip
    _check(tool, arguments)
    return tool.run(arguments)


def _check(tool: Tool, arguments: dict[str, Any]) -> None:
    """The arguments against the tool's schema: required fields, their types, no others."""
    properties = tool.parameters["properties"]
    for name in tool.parameters["required"]:
        if name not in arguments:
            raise ToolError(f"{tool.name}: missing argument {name!r} "
                            f"(arguments: {', '.join(properties)})")  # fmt: skip
    for name, value in arguments.items():
        schema = properties.get(name)
        if schema is None:
            raise ToolError(f"{tool.name}: unknown argument {name[:40]!r} "
                            f"(arguments: {', '.join(properties)})")  # fmt: skip
        wanted = schema["type"]
        if wanted == "string":
            fits = isinstance(value, str)
        else:  # "number": a JSON number (not a boolean)
            fits = isinstance(value, int | float) and not isinstance(value, bool)
        if not fits:
            raise ToolError(f"{tool.name}: argument {name!r} must be a {wanted}, "
                            f"not {_json_kind(value)}")  # fmt: skip


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
