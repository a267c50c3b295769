"""`perwatt setup`: the binary and the packaged models in place, and where they are."""

from __future__ import annotations

import subprocess
import sys

import pytest

from perwatt.endpoints.server_build import llama_server_binary

pytestmark = pytest.mark.slow


def test_setup_says_where_the_server_and_the_models_are():
    binary = llama_server_binary()  # builds it when missing; setup then finds it
    result = subprocess.run([sys.executable, "-m", "perwatt", "setup"], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # the console may wrap long lines
    assert f"llama-server: {binary}" in out and "llama.cpp 0c1e57098" in out
    assert " in " in out and "jobs" in out  # how long the build took
    assert "smollm2-135m: " in out and "gemma3-270m: " in out
