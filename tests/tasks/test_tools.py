"""The task tools: a calculator that only ever does arithmetic, exact unit conversion, and
`execute`, which turns every failure into a result for the model instead of an exception."""

from __future__ import annotations

import json
import operator
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perwatt.errors import PerwattError
from perwatt.tasks import _tools
from perwatt.tasks._tools import (
    MAX_EXPRESSION_CHARS,
    TOOLS,
    ToolError,
    ToolResult,
    calculate,
    convert,
    execute,
    tool_specs,
)


def calc(expression: str) -> ToolResult:
    return execute("calculator", json.dumps({"expression": expression}))


def conv(value: object, from_unit: str, to_unit: str) -> ToolResult:
    return execute("convert_units", json.dumps({"value": value, "from_unit": from_unit,
                                                "to_unit": to_unit}))  # fmt: skip


# --- calculator ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "content"),
    [
        ("17 * 23", "391"),
        ("(12 + 30) * 7 / 2", "147"),
        ("10 / 4", "2.5"),
        ("1 / 3", "0.3333333333333333"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** -2", "0.25"),
        ("-2 ** 2", "-4"),
        ("(-2) ** 2", "4"),
        ("+5 - -3", "8"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("1_000 * 3", "3000"),
        ("2.5e3 + 1", "2501"),
        ("  3 × 4 − 10 ÷ 5 ", "10"),
        ("9 ** 100", str(9**100)),
    ],
)
def test_the_calculator_does_pythons_arithmetic(expression, content):
    result = calc(expression)
    assert result == ToolResult(ok=True, content=content, error=None, wall_s=result.wall_s)
    assert 0 <= result.wall_s < 1


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(-8) ** 0.5", "(-8) ** 0.5 is not a real number"),
        ("2 ^ 3", "(use ** for a power)"),
        ("1 +", "not an arithmetic expression (invalid syntax)"),
        ("", "the expression is empty"),
        ("1, 2", "tuple"),
        ("1 < 2", "compare"),
        ("True + 1", "True is not a number"),
        ("'a' * 3", "'a' is not a number"),
        ("1j * 2", "1j is not a number"),
        ("1e999", "not a finite number"),
        ("1e100 * 10", "over 1e+100"),
        ("99 ** 100", "over 1e+100"),
        ("2.0 ** 100 * 1e80", "over 1e+100"),
        ("10 ** 101", "the exponent 101 is over 100"),
        ("~5", "the operator in '~5' is not allowed"),
        ("not 1", "the operator in 'not 1' is not allowed"),
        ("5 << 2", "the operator '5 << 2' is not allowed"),
    ],
)
def test_what_is_not_arithmetic_or_out_of_bounds_is_an_error_result(expression, message):
    result = calc(expression)
    assert not result.ok and result.error is not None and message in result.error
    assert result.content == f"error: {result.error}"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('touch {canary}')",
        "open('{canary}', 'w')",
        "__import__('os')",
        "open('/etc/passwd').read()",
        "(1).__class__.__bases__[0].__subclasses__()",
        "().__class__",
        "x",
        "x + 1",
        "abs(-1)",
        "[1, 2][0]",
        "{'a': 1}",
        "lambda: 1",
        "(y := 2)",
        "[i for i in range(10**9)]",
        "f'{1+1}'",
        "1 if 1 else 2",
        "...",
        "b'1'",
        "print",
    ],
)
def test_names_calls_attributes_and_the_rest_are_rejected_unrun(expression, tmp_path):
    canary = tmp_path / "pwned"
    result = calc(expression.replace("{canary}", str(canary)))
    assert not result.ok and result.error is not None
    assert "not allowed" in result.error or "not a number" in result.error, result.error
    assert result.content.startswith("error: ")
    assert not canary.exists()


@pytest.mark.parametrize(
    "expression",
    ["9**9**9", "9 ** 9 ** 9 ** 9", "(10**100) ** 100", "2 ** 10 ** 10", "10**100 * 10**100"],
)
def test_huge_powers_and_products_are_refused_at_once(expression):
    started = time.perf_counter()
    result = calc(expression)
    assert not result.ok and ("exponent" in result.error or "over 1e+100" in result.error)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1+" * 600 + "1", f"longer than {MAX_EXPRESSION_CHARS} characters"),
        ("-" * 500 + "1", "nested more than 100 deep"),
        ("(" * 300 + "1" + ")" * 300, "not an arithmetic expression"),
        ("f(" + "-" * 900 + "1)", "not allowed"),
        ("1" * 1000, "over 1e+100"),
        ("1 + " * 200 + "1", "nested more than 100 deep"),
    ],
)
def test_long_and_deep_expressions_are_refused_cheaply(expression, message):
    started = time.perf_counter()
    result = calc(expression)
    assert not result.ok and message in (result.error or ""), result
    assert time.perf_counter() - started < 0.5


def test_calculate_raises_tool_errors_only():
    assert calculate("6 * 7") == 42
    with pytest.raises(ToolError, match="division by zero"):
        calculate("1/0")


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
        "//": operator.floordiv, "%": operator.mod}  # fmt: skip


def _leaf() -> st.SearchStrategy[tuple[str, int]]:
    return st.integers(-20, 20).map(lambda n: (f"({n})" if n < 0 else str(n), n))


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    binary = st.tuples(children, st.sampled_from(sorted(_OPS)), children).map(_binary)
    power = st.tuples(_leaf(), st.integers(0, 3)).map(_power)
    negate = children.map(lambda c: (f"(-{c[0]})", ("neg", c[1])))
    return st.one_of(binary, power, negate)


def _power(t):
    (base, value), exponent = t
    return f"({base} ** {exponent})", ("**", value, exponent)


def _binary(t):
    (ls, lv), op, (rs, rv) = t
    return f"({ls} {op} {rs})", (op, lv, rv)


def _oracle(tree):
    """The value by Python's operators, applied directly (no eval)."""
    if isinstance(tree, int):
        return tree
    if tree[0] == "neg":
        return -_oracle(tree[1])
    if tree[0] == "**":
        return tree[1] ** tree[2]
    return _OPS[tree[0]](_oracle(tree[1]), _oracle(tree[2]))


@settings(max_examples=300, deadline=None)
@given(st.recursive(_leaf(), _extend, max_leaves=8))
def test_the_calculator_agrees_with_python_on_random_integer_expressions(case):
    expression, tree = case
    try:
        expected = _oracle(tree)
    except ZeroDivisionError:
        result = calc(expression)
        assert not result.ok and result.error == "division by zero"
        return
    value = calculate(expression)  # |values| stay far under the bounds here
    assert value == expected and type(value) is type(expected)


# --- unit conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target", "content"),
    [
        (1, "mi", "km", "1 mi = 1.609344 km"),
        (12, "in", "ft", "12 in = 1 ft"),
        (3, "feet", "yards", "3 ft = 1 yd"),
        (100, "cm", "m", "100 cm = 1 m"),
        (1, "lb", "kg", "1 lb = 0.45359237 kg"),
        (16, "oz", "lb", "16 oz = 1 lb"),
        (2.5, "t", "kg", "2.5 t = 2500 kg"),
        (90, "min", "h", "90 min = 1.5 h"),
        (1, "week", "s", "1 week = 604800 s"),
        (1, "gal", "l", "1 gal = 3.785411784 l"),
        (4, "qt", "gal", "4 qt = 1 gal"),
        (1, "m3", "L", "1 m3 = 1000 l"),
        (100, "C", "F", "100 C = 212 F"),
        (32, "fahrenheit", "celsius", "32 F = 0 C"),
        (-40, "C", "F", "-40 C = -40 F"),
        (0, "K", "C", "0 K = -273.15 C"),
        (98.6, "°F", "C", "98.6 F = 37 C"),
        (1, " Metric  Ton ", "kg", "1 t = 1000 kg"),
    ],
)
def test_units_convert_exactly(value, source, target, content):
    result = conv(value, source, target)
    assert result.ok and result.content == content, result


def test_conversion_is_correctly_rounded_from_exact_factors():
    assert convert(1, "ft", "m") == 0.3048
    assert convert(1, "in", "cm") == 2.54
    assert convert(1, "oz", "g") == 28.349523125
    assert convert(1, "mi", "ft") == 5280


@pytest.mark.parametrize(
    ("value", "source", "target", "message"),
    [
        (1, "kg", "m", "cannot convert kg (mass) to m (length)"),
        (1, "C", "s", "cannot convert C (temperature) to s (time)"),
        (1, "parsec", "m", "unknown unit 'parsec'; units: length: m, km"),
        (1, "m", "", "unknown unit ''"),
        (-300, "C", "K", "-300 C is below absolute zero"),
        (1e300, "m", "km", "finite number of magnitude at most 1e+100"),
    ],
)
def test_impossible_conversions_are_error_results(value, source, target, message):
    result = conv(value, source, target)
    assert not result.ok and message in (result.error or ""), result


# --- execute: every failure is a result ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("x", "{}", "unknown tool 'x'; tools: calculator, convert_units"),
        ("", "{}", "unknown tool ''; tools: calculator, convert_units"),
        (None, "{}", "unknown tool None"),
        ("calculator", "not json", "calculator: the arguments are not JSON"),
        ("calculator", '{"expression": "1+1"', "calculator: the arguments are not JSON"),
        ("calculator", "[" * 100000, "calculator: the arguments are over 10000 characters"),
        ("calculator", "[" * 5000 + "]" * 5000, "calculator: the arguments are nested too deeply"),
        ("calculator", '[{"expression": "1"}]', "must be a JSON object, not a list"),
        ("calculator", '"1+1"', "must be a JSON object, not a string"),
        ("calculator", "null", "must be a JSON object, not null"),
        ("calculator", "", "calculator: missing argument 'expression'"),
        ("calculator", "{}", "calculator: missing argument 'expression'"),
        ("calculator", '{"expression": 42}', "'expression' must be a string, not a number"),
        ("calculator", '{"expression": "1", "x": 1}', "calculator: unknown argument 'x'"),
        ("convert_units", '{"value": 1, "from_unit": "m"}', "missing argument 'to_unit'"),
        ("convert_units", '{"value": "1", "from_unit": "m", "to_unit": "km"}',
         "argument 'value' must be a number, not a string"),
        ("convert_units", '{"value": true, "from_unit": "m", "to_unit": "km"}',
         "argument 'value' must be a number, not a boolean"),
        ("convert_units", '{"value": 1, "from_unit": ["m"], "to_unit": "km"}',
         "argument 'from_unit' must be a string, not a list"),
        ("convert_units", '{"value": NaN, "from_unit": "m", "to_unit": "km"}',
         "the value must be a finite number"),
    ],
)  # fmt: skip
def test_every_bad_call_is_a_failed_result_with_a_message_for_the_model(name, arguments, message):
    result = execute(name, arguments)
    assert isinstance(result, ToolResult) and not result.ok
    assert result.error is not None and message in result.error, result
    assert result.content == f"error: {result.error}" and result.wall_s >= 0


def test_a_tool_that_raises_is_a_failed_result(monkeypatch):
    def broken(arguments):
        raise RuntimeError("the tool broke")

    monkeypatch.setattr(_tools, "TOOLS", {**TOOLS, "calculator": _tools.Tool(
        name="calculator", description="", parameters=TOOLS["calculator"].parameters,
        run=broken)})  # fmt: skip
    result = execute("calculator", '{"expression": "1"}')
    assert not result.ok
    assert result.content == "error: calculator failed: RuntimeError: the tool broke"


def test_arguments_that_are_not_text_are_a_failed_result():
    result = execute("calculator", {"expression": "1"})  # type: ignore[arg-type]
    assert not result.ok and result.error == "calculator: the arguments must be JSON text"


# --- the registry -------------------------------------------------------------------------------


def test_tool_specs_are_openai_function_tools_and_copies():
    specs = tool_specs()
    assert [s["function"]["name"] for s in specs] == ["calculator", "convert_units"] == list(TOOLS)
    for spec in specs:
        assert spec["type"] == "function"
        function = spec["function"]
        assert set(function) == {"name", "description", "parameters"} and function["description"]
        parameters = function["parameters"]
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False
        assert set(parameters["required"]) == set(parameters["properties"])
    assert json.loads(json.dumps(specs)) == specs
    specs[0]["function"]["parameters"]["required"].append("oops")  # changes no later spec
    assert tool_specs(["calculator"])[0]["function"]["parameters"]["required"] == ["expression"]
    assert tool_specs(["convert_units"]) == [specs[1]]
    with pytest.raises(PerwattError, match="unknown tool 'search'; tools: calculator"):
        tool_specs(["search"])
    with pytest.raises(TypeError):
        TOOLS["x"] = TOOLS["calculator"]  # type: ignore[index]
