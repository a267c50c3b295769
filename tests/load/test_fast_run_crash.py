"""Grouped checkpoint commits keep the crash guarantees: a fast run killed mid-stream resumes
with every committed request kept as it was, nothing repeated, nothing lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_faulty_endpoint import loopback

from perwatt.store import read_run

N = 2000


def test_a_fast_run_killed_mid_stream_resumes_exactly(tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{k}: what is 6 times 7?", "a": "42"}) + "\n"
                            for k in range(N)))  # fmt: skip
    out = tmp_path / "run"
    args = ["run", "--model", "loopback", "--workload", "file:question=q,answer=a",
            "--data-file", str(data), "--limit", str(N), "--concurrency", "32",
            "--idle-seconds", "0", "--warmup", "0", "--out", str(out)]  # fmt: skip
    with loopback("--tokens", "16") as url:
        proc = subprocess.Popen([sys.executable, "-m", "perwatt", *args[:1], "--endpoint", url,
                                 *args[1:]], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        checkpoint = out / ".partial" / "requests.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if checkpoint.exists() and checkpoint.stat().st_size > 300_000:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        committed = [json.loads(line) for line in checkpoint.read_text().splitlines()
                     if line.endswith("}")]  # fmt: skip
        assert 0 < len(committed) < N, "the kill should land mid-stream"
        resumed = subprocess.run([sys.executable, "-m", "perwatt", "run", "--endpoint", url,
                                  *args[1:], "--resume"], capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    rows = read_run(out).records()
    assert len(rows) == N and len({r.item_id for r in rows}) == N  # nothing lost, nothing twice
    by_item = {r.item_id: r for r in rows}
    for before in committed:  # every committed request is kept as it was, never re-sent
        after = by_item[before["item_id"]]
        assert (after.t_sent, after.t_done, after.response_text) == (
            before["t_sent"], before["t_done"], before["response_text"],
        )  # fmt: skip
