"""The same run directory gives the same numbers before and after the runner was made fast.

`tests/fixtures/runs/before-issue-13/` is a real managed run — the packaged SmolLM2 on
llama-server, 16 reasoning-gym items at concurrency 4, estimated energy — written by perwatt at
commit 03dc2cd, before issue 13's changes (checkpoints grouped on a writer thread instead of an
fsync per request on the event loop, expensive scorers on a thread pool, records encoded without
`dataclasses.asdict`, the stream read in whole chunks), with the `summary.json` perwatt wrote
then. Today's code must read it and give every figure it gave then, and re-score every answer
to the verdict it had.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from perwatt.cli import main
from perwatt.store import read_run

BEFORE = Path(__file__).parent.parent / "fixtures" / "runs" / "before-issue-13"
# What may differ: the kernel's version and the digest of the rows it summarised (both change
# whenever the kernel reads more columns); every figure must not.
PROVENANCE = {"kernel_version", "requests_sha256"}


def _same(now: Any, then: Any) -> bool:
    """Equal; floats to 1e-12 relative: a new numpy may sum a bootstrap's resamples in another
    order and move an interval end by one unit in the last place (seen with numpy 2.4.6)."""
    if isinstance(then, float) and isinstance(now, float):
        return math.isclose(now, then, rel_tol=1e-12, abs_tol=0.0)
    return now == then


def _flat(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[prefix + key] = item
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "before-issue-13"
    shutil.copytree(BEFORE, copy)
    return copy


def test_every_figure_of_an_old_run_is_what_perwatt_said_then(run_dir: Path, tmp_path: Path):
    then = _flat(json.loads((BEFORE / "summary.json").read_text()))
    out = tmp_path / "report.json"
    main(["report", str(run_dir), "--json", str(out)])
    (now_summary,) = json.loads(out.read_text())
    now = _flat(now_summary)
    figures = {key for key in then if key.split(".")[0] not in PROVENANCE}
    assert len(figures) > 60  # accuracy, J/query, J/correct, correct/kJ, IPW, latencies, ...
    changed = {
        key: (then[key], now.get(key)) for key in figures if not _same(now.get(key), then[key])
    }
    assert not changed
    assert now["n"] == 16 and now["accuracy.value"] == 0.125


def test_re_scoring_an_old_run_gives_every_verdict_it_had(run_dir: Path, capsys):
    main(["score", str(run_dir)])
    assert "2 → 2 correct (0 changed, 0 unscored)" in capsys.readouterr().out
    then = {r.request_id: r.correct for r in read_run(run_dir).records()}
    rescored = {r.request_id: r.correct for r in read_run(Path(f"{run_dir}-rescored")).records()}
    assert rescored == then and len(then) == 16
