"""Every command shows the same figure for the same rows (issue 11's acceptance).

Two runs on the same items, one of which answers an item twice (right once, wrong once), has a
failed request and a truncated answer, with an estimated energy band: `report --json`,
summary.json as the runner writes it, `route --json`, `compare --json`, `runs ls --json` and the
HTML report must all show the same accuracy, J/query, J/correct, correct/kJ and IPW, and the
same energy label and band.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import record, run_data
from perwatt.analysis.summaries import compute_summaries
from perwatt.cli import main
from perwatt.energy.timeline import TimelineRow
from perwatt.report.format import num
from perwatt.store import RunWriter

BAND = "×/÷2"


def rows_for(run: str, outcomes: list[tuple[str, bool, str, float]]):
    return [
        record(run_id=run, request_id=k, model=run, item_id=item, prompt_tokens=10,
               completion_tokens=20, t_scheduled=float(k), t_sent=float(k),
               t_first_token=k + 0.2, t_done=k + 1.0 + 0.1 * k, status=status,
               correct=correct, score=float(correct), energy_j=energy, energy_net_j=energy - 0.5,
               energy_source="estimated:cputime", reference="3",
               finish_reason="length" if status == "truncated" else "stop")
        for k, (item, correct, status, energy) in enumerate(outcomes)
    ]  # fmt: skip


def write(root: Path, name: str, outcomes) -> Path:
    rows = rows_for(name, outcomes)
    data = run_data(str(root / name), rows, model=name, band=BAND, resamples=300,
                    active_params=10**8 if name == "small" else 10**9)  # fmt: skip
    (summary,) = compute_summaries([data])
    power = [TimelineRow(float(t), "cpu", 5.0 * t, 5.0, "estimated:cputime") for t in range(20)]
    RunWriter(root / name).finalize(rows, power, data.manifest, summary, complete=True)
    return root / name


@pytest.fixture
def study(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write(root, "small", [
        ("i0", True, "ok", 2.0), ("i0", False, "ok", 3.0),  # a repeated item: right, then wrong
        ("i1", False, "error", 0.5),  # a failed request: incorrect, counted
        ("i2", False, "truncated", 4.0),  # cut off: incorrect whatever it said
        ("i3", True, "ok", 2.5), ("i4", True, "ok", 1.5), ("i5", False, "ok", 2.0),
    ])  # fmt: skip
    write(root, "large", [
        ("i0", True, "ok", 9.0), ("i1", True, "ok", 8.0), ("i2", True, "ok", 7.0),
        ("i3", True, "ok", 9.5), ("i4", False, "ok", 8.5), ("i5", True, "ok", 9.0),
    ])  # fmt: skip
    return root


def cli(capsys, *args: object) -> str:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    return capsys.readouterr().out


def test_every_command_shows_the_same_figures(study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cli(capsys, "report", study, "--json", out / "report.json")
    report = {s["model"]: s for s in json.loads((out / "report.json").read_text())}
    stored = {m: json.loads((study / m / "summary.json").read_text()) for m in report}
    cli(capsys, "route", study, "--json", out / "route.json")
    route = json.loads((out / "route.json").read_text())["routing"]
    cli(capsys, "compare", study / "small", study / "large", "--json", out / "compare.json")
    compare = json.loads((out / "compare.json").read_text())
    cli(capsys, "runs", "ls", study, "--json", out / "ls.json")
    listing = {row["facts"]["model"]: row for row in json.loads((out / "ls.json").read_text())}
    cli(capsys, "report", study, "--html", out / "report.html")
    page = (out / "report.html").read_text()

    small = report["small"]
    # The repeated item counts once with the mean of its attempts: (0.5 + 0 + 0 + 1 + 1 + 0) / 6.
    assert small["accuracy"]["value"] == pytest.approx(2.5 / 6)
    assert (small["n"], small["n_requests"], small["n_error"], small["n_truncated"]) == (6, 7, 1, 1)
    for model, s in report.items():
        figures = {
            k: s[k]["value"]
            for k in (
                "accuracy",
                "energy_per_query_j",
                "joules_per_correct",
                "correct_per_kj",
                "ipw",
            )
        }
        assert s["energy_band"] == BAND and s["energy_label"] == "estimated:cputime"
        # summary.json, as the run wrote it, holds the very same figures and intervals.
        for k in ("accuracy", "energy_per_query_j", "joules_per_correct", "correct_per_kj",
                  "ipw"):  # fmt: skip
            assert stored[model][k] == s[k], (model, k)
        candidate = next(c for c in route["candidates"] if c["name"] == model)
        assert candidate["accuracy"] == pytest.approx(figures["accuracy"])
        assert candidate["energy_per_query_j"] == pytest.approx(figures["energy_per_query_j"])
        assert candidate["energy_band"] == BAND
        always = next(o for o in route["outcomes"] if o["policy"] == f"always {model}")
        assert always["accuracy"]["value"] == pytest.approx(figures["accuracy"])
        side = compare["a"] if model == "small" else compare["b"]
        assert side["accuracy"] == pytest.approx(figures["accuracy"])
        assert side["energy_per_query_j"] == pytest.approx(figures["energy_per_query_j"])
        assert side["joules_per_correct"] == pytest.approx(figures["joules_per_correct"])
        assert side["correct_per_kj"] == pytest.approx(figures["correct_per_kj"])
        assert side["energy_band"] == BAND
        row = listing[model]
        assert row["accuracy"] == pytest.approx(figures["accuracy"])
        assert row["energy_per_query_j"] == pytest.approx(figures["energy_per_query_j"])
        assert row["joules_per_correct"] == pytest.approx(figures["joules_per_correct"])
        assert row["energy_band"] == BAND
        # The HTML report's leaderboard row shows the same figures (as the format module writes
        # them) and the same band.
        html_row = next(r for r in re.findall(r"<tr>.*?</tr>", page, flags=re.S) if
                        f">{model}<" in r and "badge" in r)  # fmt: skip
        for value in (100 * figures["accuracy"], figures["energy_per_query_j"],
                      figures["joules_per_correct"], figures["correct_per_kj"],
                      figures["ipw"]):  # fmt: skip
            assert f">{num(value)}<" in html_row, (model, value)
        assert BAND in html_row
