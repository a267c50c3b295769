"""`perwatt run` end to end against a fast server, against a bare aiohttp loop in the same command.

A loopback streaming server (benchmarks/loopback_server.py, 16 tokens a response, with `--stamp`
so it records when each request arrived and when it wrote the first token) answers N requests at
concurrency C, first from a bare aiohttp loop (the ceiling: no scoring, no checkpoints, no
energy, nothing kept), then from the real `perwatt run --endpoint` on a file workload of N items
(`file:question=q,answer=a`, each answered "42" and scored numeric). For perwatt the rate is
taken from the run's own timestamps (requests / (last t_done − first t_sent)), the client CPU per
request is the harness CPU the manifest records over the workload, the send lag p99 and TTFT come
from the run's summary and rows, and the TTFT overhead is each row's TTFT minus the server's own
(first write − arrival) for the same request: what perwatt adds to a latency it reports.

Usage: .venv/bin/python benchmarks/bench_run_e2e.py [--requests 3000] [--concurrency 64]
       [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench_client import SERVER, free_port
from perwatt.analysis.summaries import summaries_of
from perwatt.store import read_run

TOKENS = 16


def start_server(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port), "--tokens", str(TOKENS), "--stamp"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    return proc


async def bare(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """Requests per second of the plainest streaming loop there is, and its CPU ms/request."""
    remaining = n
    body = {"model": "loopback", "messages": [{"role": "user", "content": "hi"}],
            "stream": True}  # fmt: skip
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with s.post(f"{url}/chat/completions", json=body) as response:
                    async for line in response.content:
                        if line.startswith(b"data: ") and line[6:12] != b"[DONE]":
                            json.loads(line[6:])

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / n


def perwatt_run(url: str, n: int, concurrency: int, work: Path, tag: str) -> dict[str, float]:
    data = work / f"items-{tag}.jsonl"
    data.write_text("".join(json.dumps({"q": f"[[id={k}]] What is 6 times 7?", "a": "42"}) + "\n"
                            for k in range(n)))  # fmt: skip
    out = work / f"run-{tag}"
    cmd = [sys.executable, "-m", "perwatt", "run", "--endpoint", url, "--model", "loopback",
           "--workload", "file:question=q,answer=a", "--data-file", str(data), "--limit", str(n),
           "--concurrency", str(concurrency), "--idle-seconds", "0", "--warmup", "0",
           "--energy", "estimate", "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    command_s = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"perwatt run failed: {result.stderr.strip()[-600:]}")
    run = read_run(out)
    rows = run.records()
    ok = sum(r.status == "ok" for r in rows)
    window = max(r.t_done for r in rows) - min(r.t_sent for r in rows)
    (summary,) = summaries_of([run])
    cpu = sum(s.harness_cpu_s for s in run.manifest.segments)
    return {
        "rate": len(rows) / window,
        "ok": ok,
        "cpu_ms": 1000 * cpu / len(rows),
        "lag_p99_ms": 1000 * (summary.send_lag_p99_s or 0.0),
        "ttft_p50_ms": 1000 * (summary.ttft_p50_s or 0.0),
        "command_s": command_s,
        "out": str(out),
    }


def ttft_overhead_ms(url: str, out: Path) -> float:
    """Median over the run's rows of its TTFT minus the server's own for the same request."""
    import urllib.request

    with urllib.request.urlopen(f"{url.removesuffix('/v1')}/stamps") as response:
        stamps = json.loads(response.read())
    run = read_run(out)
    items = {i.item_id: i for i in run.items() or []}
    diffs = []
    for r in run.records():
        if r.ttft_s is None or r.item_id not in items:
            continue
        key = items[r.item_id].question.partition("[[id=")[2].partition("]]")[0]
        if key in stamps:
            arrive, first = stamps[key]
            diffs.append(r.ttft_s - (first - arrive))
    return 1000 * statistics.median(diffs) if diffs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with open("/proc/loadavg") as handle:
        print(f"load average at start: {handle.read().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ratios = []
        for k in range(args.rounds):
            port = free_port()
            server = start_server(port)
            url = f"http://127.0.0.1:{port}/v1"
            try:
                bare_rate, bare_cpu = asyncio.run(bare(url, args.requests, args.concurrency))
                server.terminate()
                server.wait()
                server = start_server(port)  # fresh stamps for perwatt's requests
                p = perwatt_run(url, args.requests, args.concurrency, work, str(k))
                overhead = ttft_overhead_ms(url, Path(p["out"]))
            finally:
                server.terminate()
                server.wait()
            ratio = p["rate"] / bare_rate
            ratios.append(ratio)
            print(
                f"round {k + 1}: bare loop {bare_rate:,.0f} req/s ({bare_cpu:.3f} ms CPU/request); "
                f"perwatt run {p['rate']:,.0f} "
                f"req/s ({p['ok']:,}/{args.requests:,} ok) = {ratio:.2f}x; client CPU "
                f"{p['cpu_ms']:.3f} ms/request; send lag p99 {p['lag_p99_ms']:.2f} ms; TTFT p50 "
                f"{p['ttft_p50_ms']:.2f} ms, perwatt's own share of it {overhead:.2f} ms "
                f"(median); whole command {p['command_s']:.1f} s"
            )
        print(f"perwatt run / bare loop: median {statistics.median(ratios):.2f}x over "
              f"{len(ratios)} rounds")  # fmt: skip


if __name__ == "__main__":
    main()
