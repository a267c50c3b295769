"""`--resume` continues a run with the settings it was started with, says what it does, leaves a
complete run alone, and refuses a flag that would change what is measured."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_faulty_endpoint import loopback, perwatt

from perwatt.store import read_run

N = 12


def _args(data: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["run", "--endpoint", url, "--model", "loopback", "--workload",
            "file:question=q,answer=a", "--data-file", str(data), "--idle-seconds", "0",
            "--warmup", "0", "--out", str(out), *extra]  # fmt: skip


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{k}: 6 times 7?", "a": "42"}) + "\n"
                            for k in range(40)))  # fmt: skip
    return data


def test_resume_takes_the_runs_own_settings_and_says_how_far_it_got(tmp_path):
    data, out = _data(tmp_path), tmp_path / "run"
    # A slow server so that the kill lands after some requests and before the last.
    with loopback("--tokens", "4", "--stamp", "--first-token-ms", "150") as url:
        proc = subprocess.Popen([sys.executable, "-m", "perwatt",
                                 *_args(data, out, url, "--limit", str(N))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        checkpoint = out / ".partial" / "requests.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if checkpoint.exists() and checkpoint.read_text().count("\n") >= 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done = sum(1 for line in checkpoint.read_text().splitlines() if line.endswith("}"))
        assert 0 < done < N
        # The killed attempt is on record before anything else happens.
        segments = json.loads((out / ".partial" / "segments.json").read_text())
        assert len(segments) == 1 and segments[0]["ended"] == ""

        # No --limit given: the run's own 12, not the default 50.
        resumed = perwatt(*_args(data, out, url, "--resume"))
        assert resumed.returncode == 0, resumed.stderr
        assert f"resuming {out}: {done} of {N} items done, {N - done} to go" in resumed.stdout
        run = read_run(out)
        assert run.requests.num_rows == N and run.manifest.config.limit == N
        assert [bool(s.ended) for s in run.manifest.segments] == [False, True]

        # Complete now: a resume changes nothing and says so.
        before = (out / "requests.parquet").read_bytes()
        again = perwatt(*_args(data, out, url, "--resume"))
        assert again.returncode == 0, again.stderr
        assert "already complete (12 of 12 items); nothing to do" in again.stdout
        assert (out / "requests.parquet").read_bytes() == before
        assert not (out / ".partial").exists()

        # Asked to extend it (or to measure it differently): exit 2, one line, nothing touched.
        for flag in (["--limit", "20"], ["--max-tokens", "8"], ["--concurrency", "4"]):
            refused = perwatt(*_args(data, out, url, "--resume", *flag))
            assert refused.returncode == 2, (flag, refused.stderr)
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and flag[0] in lines[0] and "Traceback" not in lines[0]
            assert (out / "requests.parquet").read_bytes() == before


def test_resume_of_nothing_is_a_clear_error(tmp_path):
    result = perwatt("run", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--out",
                     str(tmp_path / "nope"), "--resume")  # fmt: skip
    assert result.returncode == 2
    assert "nothing to resume" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nope").exists()


def test_a_full_disk_is_one_clear_error_and_resume_completes_honestly(tmp_path):
    # The file-size limit makes every write past 40 kB fail as a full disk does (the same
    # OSError path as ENOSPC), with SIGXFSZ ignored as a full disk raises no signal.
    import resource

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    data, out = _data(tmp_path), tmp_path / "run"
    with loopback("--tokens", "4") as url:
        full = subprocess.run([sys.executable, "-m", "perwatt",
                               *_args(data, out, url, "--limit", "40")], capture_output=True,
                              text=True, timeout=120, preexec_fn=small_disk)  # fmt: skip
        assert full.returncode == 2, full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot write the run's checkpoint" in lines[0]
        assert "--resume" in lines[0] and "Traceback" not in full.stderr
        resumed = perwatt(*_args(data, out, url, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    run = read_run(out)
    rows = run.records()
    assert len(rows) == 40 and len({r.item_id for r in rows}) == 40
    totals = run.manifest.energy.totals
    # Complete only with an energy timeline over every request, or a warning that says not.
    assert totals.coverage == 1.0 or any("energy timeline" in w for w in totals.warnings)
