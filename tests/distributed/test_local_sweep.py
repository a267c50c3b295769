"""Local sweeps: cells in order into one store, a finished cell never runs again, a partial one
resumes. The slow tests run the real llama.cpp server with the packaged models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import make_manifest
from perwatt.distributed.local import cell_status
from perwatt.distributed.spec import load_sweep
from perwatt.errors import PerwattError
from perwatt.store import RunWriter, read_run

PERWATT = [sys.executable, "-m", "perwatt"]


def perwatt(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PERWATT, *args], capture_output=True, text=True, timeout=timeout)


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- the store's view of a cell -------------------------------------------------------------


def test_cell_status_reads_the_run_directory(tmp_path, rows):
    assert cell_status(tmp_path / "nothing") == "absent"
    (tmp_path / "empty").mkdir()
    assert cell_status(tmp_path / "empty") == "absent"

    partial = RunWriter(tmp_path / "partial")
    partial.append_request(rows[0])
    partial.close()
    assert cell_status(tmp_path / "partial") == "partial"

    for status, expected in (("interrupted", "partial"), ("complete", "finished")):
        writer = RunWriter(tmp_path / status)
        manifest = make_manifest(status).model_copy(update={"status": status})
        writer.finalize(rows, [], manifest, {}, complete=status == "complete")
        assert cell_status(tmp_path / status) == expected

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    with pytest.raises(PerwattError, match="not a perwatt run"):
        cell_status(junk)


def test_a_local_sweep_refuses_two_kinds_of_hardware(tmp_path):
    spec = write(tmp_path, """
        models: [smollm2-135m]
        hardware: [{name: h100, resources: {"accelerator:h100": 1}}, {name: l4}]
    """)  # fmt: skip
    result = perwatt("sweep", str(spec), "--out", str(tmp_path / "store"), timeout=120)
    assert result.returncode == 2
    assert "2 kinds of hardware" in result.stderr and "--ray" in result.stderr
    assert not (tmp_path / "store").exists()


# --- real sweeps ----------------------------------------------------------------------------

TINY = """
    base: {limit: 2, idle_seconds: 0, max_tokens: 32}
    models: [smollm2-135m]
    load: [{concurrency: 1}, {concurrency: 2}]
"""


@pytest.mark.slow
def test_local_sweep_runs_each_cell_once_into_one_store(tmp_path):
    spec = write(tmp_path, TINY)
    store = tmp_path / "store"
    cells = load_sweep(spec, out=store).cells

    first = perwatt("sweep", str(spec), "--out", str(store))
    assert first.returncode == 0, first.stderr
    assert "load sweep" in first.stdout
    for cell in cells:
        run = read_run(store / cell.cell_id)
        assert run.manifest.status == "complete"
        assert run.manifest.load.concurrency == cell.spec.concurrency
        assert [r.item_id for r in run.records()] == ["chain_sum/0000", "letter_counting/0000"]
    rows = json.loads((store / "sweep.json").read_text())
    assert [r["cell_id"] for r in rows] == [c.cell_id for c in cells]
    assert all(r["energy_label"].startswith("estimated") for r in rows)
    placed = json.loads((store / "cells.json").read_text())["cells"]
    assert [(c["status"], c["backend"], c["how"]) for c in placed] == [
        ("finished", "local", "ran")
    ] * 2

    stamps = {c.cell_id: (store / c.cell_id / "manifest.json").stat().st_mtime_ns for c in cells}
    again = perwatt("sweep", str(spec), "--out", str(store))
    assert again.returncode == 0, again.stderr
    assert "2 finished earlier" in again.stdout and "running" not in again.stdout
    assert stamps == {
        c.cell_id: (store / c.cell_id / "manifest.json").stat().st_mtime_ns for c in cells
    }
    assert "load sweep" in again.stdout  # the table still covers every cell
    # Placement recorded by the first invocation is kept.
    placed_again = json.loads((store / "cells.json").read_text())["cells"]
    assert [c["how"] for c in placed_again] == ["ran", "ran"]


@pytest.mark.slow
def test_an_interrupted_cell_resumes_without_losing_or_repeating_requests(tmp_path):
    spec = write(tmp_path, """
        base: {limit: 8, idle_seconds: 0, max_tokens: 32}
        models: [smollm2-135m]
    """)  # fmt: skip
    store = tmp_path / "store"
    (cell,) = load_sweep(spec, out=store).cells
    checkpoint = store / cell.cell_id / ".partial" / "requests.jsonl"

    proc = subprocess.Popen(
        [*PERWATT, "sweep", str(spec), "--out", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.is_file() and checkpoint.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)  # the CLI treats SIGTERM like Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert cell_status(store / cell.cell_id) == "partial"
    kept = checkpoint.read_text().count("\n")
    assert 1 <= kept < 8

    resumed = perwatt("sweep", str(spec), "--out", str(store))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    run = read_run(store / cell.cell_id)
    assert run.manifest.status == "complete"
    assert len(run.manifest.segments) == 2
    rows = run.records()
    assert len(rows) == 8
    assert len({r.item_id for r in rows}) == 8
    assert [r.request_id for r in rows] == list(range(8))
    placed = json.loads((store / "cells.json").read_text())["cells"]
    assert placed[0]["how"] == "resumed"
