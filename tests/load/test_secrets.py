"""API keys never reach a file: markers in a URL's userinfo, its query string and the environment
are looked for in everything a run writes (the run directory and its checkpoint, the HTML report,
the terminal output, perwatt's cache): zero hits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_faulty_endpoint import loopback

USERINFO = "SECRETUSERINFO7f3a"
QUERY = "SECRETQUERY91c2"
ENV = "SECRETENV55d0"
MARKERS = (USERINFO, QUERY, ENV)


def _hits(paths: list[Path], texts: list[str]) -> list[str]:
    found = []
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            found += [f"{path}: {m}" for m in MARKERS if m.encode() in data]
    found += [f"output: {m}" for text in texts for m in MARKERS if m in text]
    return found


def test_keys_in_the_url_and_the_environment_never_reach_a_file(tmp_path):
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"q": f"q{k}: 6 times 7?", "a": "42"}) + "\n"
                            for k in range(8)))  # fmt: skip
    env = os.environ | {"PERWATT_API_KEY": ENV}
    outputs: list[str] = []
    with loopback("--tokens", "4", "--stamp", "--first-token-ms", "100") as url:
        secret = url.replace("http://", f"http://user:{USERINFO}@") + f"?api_key={QUERY}&x=1"
        args = [sys.executable, "-m", "perwatt", "run", "--endpoint", secret, "--model",
                "loopback", "--workload", "file:question=q,answer=a", "--data-file", str(data),
                "--idle-seconds", "0.2", "--warmup", "1", "--limit", "8"]  # fmt: skip
        # A killed run: its checkpoint is looked at as it was left.
        killed = tmp_path / "killed"
        proc = subprocess.Popen([*args, "--out", str(killed)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        checkpoint = killed / ".partial" / "requests.jsonl"
        while time.monotonic() < deadline and not (
            checkpoint.exists() and checkpoint.read_text().count("\n") >= 2
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert (killed / ".partial" / "spec.json").is_file()
        partial = _hits([killed], [])

        done = tmp_path / "done"
        run = subprocess.run([*args, "--out", str(done), "--html", str(tmp_path / "r.html")],
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr
        outputs += [run.stdout, run.stderr]
        # An error that names the endpoint (the model is not served) redacts it as well.
        wrong_args = ["nope" if a == "loopback" else a for a in args]
        wrong = subprocess.run([*wrong_args, "--out", str(tmp_path / "w")],
                               env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert wrong.returncode == 2
        outputs += [wrong.stdout, wrong.stderr]
    report = subprocess.run([sys.executable, "-m", "perwatt", "report", str(done), "--json",
                             str(tmp_path / "report.json")], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert report.returncode == 0, report.stderr
    outputs += [report.stdout, report.stderr]
    cache = Path.home() / ".cache" / "perwatt"
    places = [done, tmp_path / "r.html", tmp_path / "report.json"]
    places += [cache] if cache.exists() else []
    assert partial == [] and _hits(places, outputs) == []
    # The URL is still recognisable, with its secrets masked.
    manifest = json.loads((done / "manifest.json").read_text())
    assert manifest["config"]["endpoint"].startswith("http://***@127.0.0.1:")
    assert manifest["config"]["endpoint"].endswith("/v1?api_key=***&x=***")
