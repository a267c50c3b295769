"""--help reads as a user needs it: flags carry no `<bool>` label (they take no value), a
default is shown as the value it is, and --workload names every workload there is."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from perwatt.energy.sources import DEFAULT_WATTS_PER_CORE
from perwatt.workloads import workloads

VERBS = [[], ["run"], ["report"], ["score"], ["route"], ["compare"], ["trends"], ["project"],
         ["meter"], ["runs"], ["runs", "ls"], ["runs", "sql"], ["sweep"], ["doctor"],
         ["setup"]]  # fmt: skip


def help_text(*verb: str) -> str:
    # Wide enough that no option's help wraps mid-list; piped, so no colour codes.
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    result = subprocess.run([sys.executable, "-m", "perwatt", *verb, "--help"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def run_help() -> str:
    return help_text("run")


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "perwatt")
def test_no_flag_shows_a_bool_label(verb):
    text = help_text(*verb)
    assert "--help" in text
    assert "<bool>" not in text


def test_flags_are_listed_without_a_value(run_help):
    for flag in ("--resume", "--require-idle-machine", "--help"):
        line = next(line for line in run_help.splitlines() if f" {flag} " in line)
        assert not re.search(rf"{flag}\s+<", line), line


def test_cpu_watts_per_core_shows_its_real_default(run_help):
    line = next(line for line in run_help.splitlines() if "--cpu-watts-per-core" in line)
    assert f"[default: {DEFAULT_WATTS_PER_CORE}]" in line
    assert "documented" not in line


@pytest.mark.parametrize("verb", ["run", "score"])
def test_workload_lists_every_workload(verb):
    text = help_text(verb)
    start = text.index("--workload")
    block = text[start : start + 800]
    for name in workloads():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", block), name
