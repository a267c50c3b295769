"""Throughput of each packaged model here, and how much of the wall time the harness costs.

Runs `perwatt run` in this process for each packaged model (sequential, 20 items, no idle
baseline) and reports, over the workload window (first request sent to last request done):

- requests/s and completion tokens/s;
- gap share: the fraction of the window with no request in flight (time the server waits for
  the harness: scoring, checkpointing, scheduling);
- harness CPU share: CPU seconds perwatt's own process (client, sampler thread, scoring,
  checkpoints) used while the workload ran, over the window — on a 2-core machine that CPU
  competes with the server (recorded by the runner in the manifest as `harness_cpu_s`).

Usage: .venv/bin/python benchmarks/bench_run.py [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console

from perwatt.config import RunSpec
from perwatt.endpoints.catalogue import DEFAULT_MODELS
from perwatt.runner import run_model
from perwatt.store import read_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    console = Console(quiet=True)
    print(f"{'model':<14} {'req/s':>7} {'tok/s':>7} {'gap %':>7} {'harness CPU %':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in DEFAULT_MODELS:
            spec = RunSpec(models=(model,), limit=args.limit, out=Path(tmp) / model,
                           idle_seconds=0, warmup_requests=1)  # fmt: skip
            started = time.monotonic()
            run_model(spec, model, console)
            wall = time.monotonic() - started
            run = read_run(Path(tmp) / model)
            cpu = sum(s["harness_cpu_s"] for s in run.manifest["segments"])
            records = run.records()
            window = max(r.t_done for r in records) - min(r.t_sent for r in records)
            busy = sum(r.e2e_s for r in records)
            tokens = sum(r.completion_tokens or 0 for r in records)
            print(
                f"{model:<14} {len(records) / window:7.2f} {tokens / window:7.1f} "
                f"{100 * (1 - busy / window):7.2f} {100 * cpu / window:14.2f}"
                f"   (wall {wall:.1f}s, window {window:.1f}s)"
            )


if __name__ == "__main__":
    main()
