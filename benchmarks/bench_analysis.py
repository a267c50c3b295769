"""Scale of the cross-run analysis: `perwatt report` and `perwatt route` on 10 M request rows.

Writes (not timed) a synthetic study of real run directories — `models` runs of rows/models items
each, one request per (run, item); each `requests.parquet` is a table of the full request schema
checked by `store.check_requests`, each `manifest.json` a `store.Manifest` — with realistic
shapes: accuracy 20–90% rising with model size (100 M to 70 B active parameters) and correlated
across models through per-item difficulty; energy lognormal per request and scaled by model size
and completion tokens; TTFT from prompt tokens, TPOT × completion tokens; 1% errors, 0.5%
timeouts and 1% truncations. Requests run one at a time (concurrency 1). The rows carry no
response text and no inter-token gaps (see benchmarks/README.md for why).

Then it times, in this process, each command as a user runs it (through the CLI app, output
captured, `--json` written):

(a) perwatt: `perwatt report DIR --json` (every per-run figure of the metrics kernel with 95%
    intervals from the run's 1,000 bootstrap resamples) and `perwatt route DIR --resamples N
    --json` (coverage of every one of the 2^20 − 1 subsets of models; always-each-model, the
    oracle and six α-accurate routers with intervals on accuracy and energy/compute/cost
    savings; the curves). Reading the runs from disk is timed; each command reads them itself.
(b) the same figures written plainly in pandas/numpy, the obvious way, from the same files:
    per-run groupby for the point figures, a bootstrap per run by `rng.choice` resampling; for
    routing, per-item pivot tables, coverage of each model, every pair and all of them, the
    oracle, the α routers (their expectation) and always-each-model, with `rng.choice`
    resamples of items for the intervals.

It checks that they agree (point values to rounding, interval ends within Monte Carlo error:
perwatt draws Poisson(1) weights above 20,000 items, (b) multinomial resamples) and prints
seconds, the ratio and each phase's peak resident memory (VmHWM, reset between phases through
/proc/self/clear_refs).

Usage: .venv/bin/python benchmarks/bench_analysis.py [--rows 10000000] [--models 20]
       [--resamples 1000] [--plain-resamples N] [--skip-plain] [--data DIR]
pandas is needed for (b) only: `.venv/bin/pip install -e '.[bench]'` (without it (b) is skipped).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STATUS_P = {"ok": 0.975, "error": 0.01, "timeout": 0.005, "truncated": 0.01}
DOMAINS = ("algebra", "arithmetic", "counting", "logic", "strings")
QS = (50, 90, 99)
ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
USD_PER_KWH = 0.13  # the route command's default price, restated here on purpose: (b) is
J_PER_KWH = 3.6e6  # independent code
STAMP = "bench_analysis.json"


# --- the synthetic study (not timed) ---------------------------------------------------------


def sizes_of(models: int) -> np.ndarray:
    return np.geomspace(1e8, 7e10, models)  # active parameters, 100 M to 70 B


def model_table(j: int, models: int, n_items: int, seed: int, shared: dict) -> pa.Table:
    """Run j's requests table (checked), one row per item."""
    from perwatt.store import REQUEST_SCHEMA, check_requests

    rng = np.random.default_rng([seed, j])
    sizes = sizes_of(models)
    span = np.log(sizes) - np.log(sizes[0])
    target = 0.2 + 0.7 * span[j] / span[-1]  # accuracy 20% → 90% with size
    size = sizes[j] / 1e9
    # Correlated across models through the item's easiness; the threshold hits the target.
    latent = 0.7 * shared["easiness"] + math.sqrt(1 - 0.49) * rng.standard_normal(n_items)
    raw_correct = latent > np.quantile(latent, 1 - target)
    names = list(STATUS_P)
    status = rng.choice(len(names), size=n_items, p=list(STATUS_P.values()))
    ok, error, timeout, truncated = (status == k for k in range(4))
    done = ok | truncated
    prompt = shared["prompt"]
    verbosity = rng.uniform(0.7, 1.3)
    completion = np.maximum(1, np.round(rng.lognormal(np.log(120), 0.6, n_items) * verbosity))
    tpot = 0.004 * size**0.5 * rng.lognormal(0, 0.1, n_items)
    ttft = 0.02 + prompt * 2e-5 * size**0.7 * rng.lognormal(0, 0.2, n_items)
    e2e = ttft + tpot * completion
    energy = 0.5 * (sizes[j] / 1e8) ** 0.8 * rng.lognormal(0, 0.5, n_items) * completion / 120
    lag = rng.exponential(1e-4, n_items)
    t_scheduled = np.concatenate([[0.0], np.cumsum(e2e + lag)[:-1]])  # one at a time
    t_sent = t_scheduled + lag
    t_first = t_sent + ttft
    t_done = t_sent + e2e
    correct = raw_correct & ok
    ref = shared["reference"]
    answer = np.where(correct, ref, ref + 1 + rng.integers(0, 9, n_items))
    run_id = f"run-{j:02d}"

    def const(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n_items, np.int8)), [value])

    def where(mask: np.ndarray, values: pa.Array | np.ndarray) -> pa.Array:
        if isinstance(values, np.ndarray):
            return pa.array(values, mask=~mask)
        return pc.if_else(pa.array(mask), values, pa.scalar(None, values.type))

    def labels(choices: dict[int, str]) -> pa.Array:
        codes = np.full(n_items, -1, np.int8)
        for code, k in enumerate(choices):
            codes[status == k] = code
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes < 0), list(choices.values())
        )

    columns = {
        "run_id": const(run_id),
        "request_id": pa.array(np.arange(n_items, dtype=np.int64)),
        "model": const(f"model-{j:02d}"),
        "endpoint": const("http://127.0.0.1:8080/v1"),
        "workload": const("reasoning-gym"),
        "task": shared["task"],
        "domain": shared["domain"],
        "item_id": shared["item_id"],
        "prompt_tokens": pa.array(prompt.astype(np.int64)),
        "completion_tokens": where(done, completion.astype(np.int64)),
        "t_scheduled": pa.array(t_scheduled),
        "t_sent": pa.array(t_sent),
        "t_first_token": where(done, t_first),
        "t_done": pa.array(t_done),
        "ttft_s": where(done, ttft),
        "e2e_s": pa.array(e2e),
        "tpot_s": where(
            done & (completion > 1), (t_done - t_first) / np.maximum(completion - 1, 1)
        ),
        "status": pa.DictionaryArray.from_arrays(pa.array(status.astype(np.int8)), names),
        "error": labels({1: "HTTP 500: synthetic", 2: "no answer within 60 s"}),
        "finish_reason": labels({0: "stop", 3: "length"}),
        "answer": where(done, pc.cast(pa.array(answer), pa.string())),
        "reference": pc.cast(pa.array(ref), pa.string()),
        "correct": where(done, correct),
        "score": where(done, correct.astype(np.float64)),
        "energy_j": pa.array(energy),
        "energy_net_j": pa.array(0.85 * energy),
        "energy_source": const("estimated:synthetic"),
        "token_count_source": const("server"),
        "error_kind": labels({1: "http", 2: "timeout"}),
        "http_status": where(~timeout, np.where(error, 500, 200).astype(np.int64)),
        "attempt": pa.array(np.ones(n_items, np.int64)),
    }
    table = pa.table({k: columns[k] for k in REQUEST_SCHEMA.names if k in columns})
    return check_requests(table, Path(run_id))


def manifest_for(j: int, models: int, table: pa.Table, resamples: int, seed: int):
    """A real Manifest, shaped like the runner's (as tests/conftest.py's make_manifest)."""
    from perwatt.config import RunSpec
    from perwatt.store import EnergyInfo, EnergyTotals, LoadInfo, Manifest, ModelInfo

    model = f"model-{j:02d}"
    total = float(pc.sum(table.column("energy_j")).as_py())
    window = float(pc.max(table.column("t_done")).as_py() - pc.min(table.column("t_sent")).as_py())
    label = "estimated:synthetic"
    totals = EnergyTotals(
        label=label,
        metered_total_j=total,
        unattributed_j=0.0,
        idle_power_w=0.0,
        window_s=window,
        window_j=total,
        band="×/÷2",
        uncertainty="synthetic estimate",
    )
    return Manifest(
        run_id=f"run-{j:02d}",
        status="complete",
        requests=table.num_rows,
        config=RunSpec(
            models=(model,),
            workload="reasoning-gym",
            bootstrap_resamples=resamples,
            seed=seed,
            endpoint="http://127.0.0.1:8080/v1",
        ),
        model=ModelInfo(name=model, display_name=model, active_params=int(sizes_of(models)[j])),
        workload="reasoning-gym",
        seed=seed,
        load=LoadInfo(label="concurrency 1", mode="closed-loop", concurrency=1),
        energy=EnergyInfo(label=label, totals=totals),
    )


def write_study(root: Path, rows: int, models: int, resamples: int, seed: int) -> list[Path]:
    """Write (or reuse) the run directories of the synthetic study under root."""
    from perwatt.store import power_table, write_json, write_table

    wanted = {"rows": rows, "models": models, "resamples": resamples, "seed": seed, "v": 1}
    dirs = [root / f"run-{j:02d}" for j in range(models)]
    stamp = root / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return dirs
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    n_items = rows // models
    rng = np.random.default_rng(seed)
    item = np.arange(n_items)
    domain = pa.DictionaryArray.from_arrays(
        pa.array((item % len(DOMAINS)).astype(np.int8)), list(DOMAINS)
    )
    shared = {
        "easiness": rng.standard_normal(n_items),
        "prompt": (40 + rng.poisson(60, n_items)).astype(np.float64),
        "reference": rng.integers(0, 10_000, n_items),
        "item_id": pc.cast(pa.array(item), pa.string()),
        "domain": domain,
        "task": domain,
    }
    for j, d in enumerate(dirs):
        table = model_table(j, models, n_items, seed, shared)
        d.mkdir()
        write_table(d / "requests.parquet", table)
        write_table(d / "power.parquet", power_table([]))
        write_json(d / "manifest.json", manifest_for(j, models, table, resamples, seed))
    stamp.write_text(json.dumps(wanted))
    return dirs


# --- (a) perwatt, through its command line -----------------------------------------------------


def perwatt_command(args: list[str]) -> None:
    from typer.testing import CliRunner

    from perwatt.cli import app

    result = CliRunner().invoke(app, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"perwatt {' '.join(args)} exited {result.exit_code}:\n{result.output}")


# --- (b) the plain pandas/numpy version ------------------------------------------------------

COLUMNS = [
    "run_id",
    "model",
    "item_id",
    "domain",
    "status",
    "correct",
    "energy_j",
    "energy_net_j",
    "t_scheduled",
    "t_sent",
    "t_first_token",
    "t_done",
    "prompt_tokens",
    "completion_tokens",
]


def read_plain(dirs: list[Path]):
    import pandas as pd

    frames = [pd.read_parquet(d / "requests.parquet", columns=COLUMNS) for d in dirs]
    manifests = [json.loads((d / "manifest.json").read_text()) for d in dirs]
    return pd.concat(frames, ignore_index=True), manifests


def wilson(k: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


def plain_report(dirs: list[Path], resamples: int, seed: int) -> dict:
    """`perwatt report`'s figures, the obvious way: groupby, a bootstrap loop per run."""
    df, manifests = read_plain(dirs)
    rng = np.random.default_rng(seed)
    windows = {m["run_id"]: m["energy"]["totals"]["window_s"] for m in manifests}
    df["c"] = df["correct"].fillna(False).astype(bool) & (df["status"] == "ok")
    df["e2e"] = df["t_done"] - df["t_sent"]
    df["ttft"] = df["t_first_token"] - df["t_sent"]
    tokens = df["completion_tokens"].astype(float)
    df["tpot"] = ((df["t_done"] - df["t_first_token"]) / (tokens - 1)).where(tokens > 1)
    df["p"] = (df["energy_j"] / df["e2e"]).where(df["e2e"] > 0, 0.0)
    df["lag"] = df["t_sent"] - df["t_scheduled"]
    out = {}
    for run_id, sub in df.groupby("run_id", sort=False):
        n = len(sub)
        c, e = sub["c"].to_numpy(float), sub["energy_j"].to_numpy()
        en, lat, p = sub["energy_net_j"].to_numpy(), sub["e2e"].to_numpy(), sub["p"].to_numpy()

        def stats(c, e, en, lat, p):
            acc, power, pq = c.mean(), e.sum() / lat.sum(), p.mean()
            return (
                acc,
                e.mean(),
                en.mean(),
                e.sum() / c.sum(),
                c.sum() / e.sum() * 1000,
                power,
                acc / power,
                pq,
                acc / pq,
            )

        boot = np.empty((resamples, 9))
        for b in range(resamples):
            idx = rng.choice(n, n)
            boot[b] = stats(c[idx], e[idx], en[idx], lat[idx], p[idx])
        completed = sub[sub["status"].isin(["ok", "truncated"])]
        window = windows[run_id]
        counts = sub["status"].value_counts()
        figures = dict(zip(POINT_NAMES, stats(c, e, en, lat, p), strict=True))
        figures.update(
            n=n,
            n_correct=int(c.sum()),
            error_rate=(counts.get("error", 0) + counts.get("timeout", 0)) / n,
            requests_per_s=n / window,
            tokens_per_s=completed["completion_tokens"].sum() / window,
            goodput_rps=c.sum() / window,
            send_lag_p99_s=sub["lag"].quantile(0.99),
        )
        for col in ("ttft", "e2e", "tpot"):
            for q, v in zip(QS, completed[col].quantile([q / 100 for q in QS]), strict=True):
                figures[f"{col}_p{q}_s"] = v
        domains = {}
        for dom, d in sub.groupby("domain"):
            k = int(d["c"].sum())
            domains[dom] = (k / len(d), *wilson(k, len(d)), d["energy_j"].mean())
        out[run_id] = {
            "points": figures,
            "intervals": dict(
                zip(POINT_NAMES, np.percentile(boot, [2.5, 97.5], axis=0).T, strict=True)
            ),
            "domains": domains,
        }
    return out


POINT_NAMES = (
    "accuracy",
    "energy_per_query_j",
    "net_energy_per_query_j",
    "joules_per_correct",
    "correct_per_kj",
    "avg_power_w",
    "ipw",
    "avg_power_per_query_w",
    "ipw_per_query",
)


def plain_route(dirs: list[Path], resamples: int, seed: int) -> dict:
    """`perwatt route`'s figures, the obvious way: pivot tables, a bootstrap loop over items."""
    df, manifests = read_plain(dirs)
    rng = np.random.default_rng(seed)
    params = {m["model"]["name"]: float(m["model"]["active_params"]) for m in manifests}
    df["c"] = (df["correct"].fillna(False).astype(bool) & (df["status"] == "ok")).astype(float)
    df["tok"] = df["prompt_tokens"] + df["completion_tokens"].fillna(0)
    wide = df.pivot_table(
        index="item_id", columns="model", values=["c", "energy_j", "tok"], aggfunc="mean"
    )
    corr, energy = wide["c"], wide["energy_j"]
    models = list(corr.columns)
    flops = wide["tok"] * 2 * np.array([params[m] for m in models])
    cost = energy / J_PER_KWH * USD_PER_KWH
    hit = corr > 0.5
    covered = hit.any(axis=1)
    accuracy = corr.mean()
    ref = max(models, key=lambda m: (accuracy[m], params[m]))
    r = models.index(ref)
    choice = energy.where(hit, np.inf).to_numpy().argmin(axis=1)
    choice = np.where(covered, choice, r)
    rows = np.arange(len(corr))
    # Per item: each model's correct/energy/FLOPs/cost, then the oracle's (4 × (M + 1)).
    per_model = [corr.to_numpy(), energy.to_numpy(), flops.to_numpy(), cost.to_numpy()]
    oracle = [x[rows, choice] for x in per_model]
    x = np.column_stack([*per_model, *[o[:, None] for o in oracle]])
    m = len(models)

    def figures(s: np.ndarray, n: float) -> dict:
        """Policy figures from item sums s (the layout of x) over n items."""
        c, e, f, usd = (s[k * m : (k + 1) * m] for k in range(4))
        oc, oe, of, ou = s[4 * m :]
        pol = {f"always {name}": (c[j], e[j], f[j], usd[j]) for j, name in enumerate(models)}
        pol["oracle"] = (oc, oe, of, ou)
        for a in ALPHAS:
            mix = (
                a * oc + (1 - a) * c[r],
                a * oe + (1 - a) * e[r],
                a * of + (1 - a) * f[r],
                a * ou + (1 - a) * usd[r],
            )
            pol[f"α={a:g} router"] = mix
        return {
            k: (pc_ / n, 1 - pe / e[r], 1 - pf / f[r], 1 - pu / usd[r])
            for k, (pc_, pe, pf, pu) in pol.items()
        }

    n = len(x)
    point = figures(x.sum(axis=0), n)
    cov = covered.to_numpy(float)
    names = list(point)
    boot = np.empty((resamples, len(names), 4))
    cov_boot = np.empty(resamples)
    for b in range(resamples):
        idx = rng.choice(n, n)
        f = figures(x[idx].sum(axis=0), n)
        boot[b] = [f[k] for k in names]
        cov_boot[b] = cov[idx].mean()
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {
        "reference": ref,
        "singles": {mm: float(hit[mm].mean()) for mm in models},
        "best_pair": max(float((hit[a] | hit[b]).mean()) for a, b in combinations(models, 2)),
        "everything": (float(cov.mean()), *np.percentile(cov_boot, [2.5, 97.5])),
        "policies": {k: (point[k], lo[j], hi[j]) for j, k in enumerate(names)},
    }


# --- agreement --------------------------------------------------------------------------------


class Agreement:
    def __init__(self) -> None:
        self.point = 0.0
        self.interval = 0.0
        self.where_point = self.where_interval = ""

    def value(self, mine: float | None, theirs: float, what: str) -> None:
        if mine is None or not math.isfinite(theirs):
            raise SystemExit(f"disagree on {what}: perwatt {mine}, plain {theirs}")
        d = abs(mine - theirs) / max(abs(theirs), 1e-300)
        if d > self.point:
            self.point, self.where_point = d, what

    def band(self, est: dict, lo: float, hi: float, what: str) -> None:
        width = hi - lo
        if est["low"] is None or width <= 0:
            raise SystemExit(f"no interval to compare on {what}: {est}")
        d = max(abs(est["low"] - lo), abs(est["high"] - hi)) / width
        if d > self.interval:
            self.interval, self.where_interval = d, what


def check(report: list[dict], route: dict, plain_rep: dict | None, plain_rt: dict | None):
    a = Agreement()
    if plain_rep is not None:
        for s in report:
            theirs = plain_rep[s["run_id"]]
            for name in POINT_NAMES:
                a.value(s[name]["value"], theirs["points"][name], f"{s['run_id']} {name}")
                a.band(s[name], *theirs["intervals"][name], f"{s['run_id']} {name}")
            for name in (
                "n",
                "n_correct",
                "error_rate",
                "requests_per_s",
                "tokens_per_s",
                "goodput_rps",
                "send_lag_p99_s",
                *(f"{c}_p{q}_s" for c in ("ttft", "e2e", "tpot") for q in QS),
            ):
                a.value(s[name], theirs["points"][name], f"{s['run_id']} {name}")
            for d in s["domains"]:
                acc, low, high, e = theirs["domains"][d["domain"]]
                for mine, t in (
                    (d["accuracy"]["value"], acc),
                    (d["accuracy"]["low"], low),
                    (d["accuracy"]["high"], high),
                    (d["energy_per_query_j"], e),
                ):
                    a.value(mine, t, f"{s['run_id']} {d['domain']}")
    if plain_rt is not None:
        r = route["routing"]
        if r["reference"] != plain_rt["reference"]:
            raise SystemExit(f"reference {r['reference']} vs plain {plain_rt['reference']}")
        cov = r["coverage"]
        for single in cov["singles"]:
            a.value(single["coverage"], plain_rt["singles"][single["models"][0]], "coverage")
        a.value(cov["best_by_size"][1]["coverage"], plain_rt["best_pair"], "best pair")
        point, lo, hi = plain_rt["everything"]
        a.value(cov["everything"]["value"], point, "coverage of all")
        a.band(cov["everything"], lo, hi, "coverage of all")
        for o in r["outcomes"]:
            point, lo, hi = plain_rt["policies"][o["policy"]]
            keys = ("accuracy", "energy_saved", "compute_saved", "cost_saved")
            for k, key in enumerate(keys):
                a.value(o[key]["value"], point[k], f"{o['policy']} {key}")
                if hi[k] > lo[k]:  # always-reference saves exactly 0 in every resample
                    a.band(o[key], lo[k], hi[k], f"{o['policy']} {key}")
    return a


# --- measuring -------------------------------------------------------------------------------


def reset_peak() -> bool:
    """Reset VmHWM (Linux); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def status_gib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 2**20
    if key == "VmHWM:":
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return float("nan")


@dataclass
class Phase:
    name: str
    wall: float
    cpu: float
    peak: float
    base: float


PHASES = ("report", "route", "plain-report", "plain-route")


def phase_main(args: argparse.Namespace) -> None:
    """One measured phase, in a process of its own (as each command is): imports first, then
    VmHWM reset, then the timed work; writes its times (and (b)'s figures) to --out."""
    import gc
    import pickle

    import perwatt.cli  # noqa: F401  (start-up is not what is measured)

    if args.phase.startswith("plain"):
        import pandas  # noqa: F401
    dirs = [args.data / f"run-{j:02d}" for j in range(args.models)]
    json_out = args.out.with_suffix(".json")
    work = {
        "report": lambda: perwatt_command(["report", str(args.data), "--json", str(json_out)]),
        "route": lambda: perwatt_command(
            [
                "route",
                str(args.data),
                "--resamples",
                str(args.resamples),
                "--seed",
                str(args.seed),
                "--json",
                str(json_out),
            ]
        ),
        "plain-report": lambda: plain_report(dirs, args.resamples, args.seed),
        "plain-route": lambda: plain_route(dirs, args.resamples, args.seed),
    }[args.phase]
    gc.collect()
    base = status_gib("VmRSS:")
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = status_gib("VmHWM:")
    with args.out.open("wb") as f:
        pickle.dump({"phase": Phase(args.phase, wall, cpu, peak, base), "result": result}, f)


def timed(name: str, args: argparse.Namespace, phase: str, resamples: int, out: Path):
    """Run one phase in a child process; its Phase and result."""
    import pickle
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--data",
            str(args.data),
            "--models",
            str(args.models),
            "--resamples",
            str(resamples),
            "--seed",
            str(args.seed),
            "--out",
            str(out),
        ],
        check=True,
    )
    with out.open("rb") as f:
        done = pickle.load(f)
    p: Phase = done["phase"]
    print(
        f"{name}: {p.wall:.2f} s ({p.cpu:.2f} s CPU), peak RSS {p.peak:.2f} GiB "
        f"(process at start {p.base:.2f} GiB); load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return done["result"], p


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--plain-resamples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="Keep the run directories here (reused when they match).",
    )
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase_main(args)
        return
    scratch = None
    if args.data is None:
        scratch = tempfile.TemporaryDirectory(prefix="bench_analysis_")
        args.data = Path(scratch.name) / "study"
    try:
        run(args)
    finally:
        if scratch is not None:
            scratch.cleanup()


def run(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    dirs = write_study(args.data, args.rows, args.models, args.resamples, args.seed)
    rows = (args.rows // args.models) * args.models
    size = sum(f.stat().st_size for d in dirs for f in d.iterdir()) / 2**20
    print(
        f"study: {rows:,} rows, {args.models} runs, {rows // args.models:,} items "
        f"({size:.0f} MiB of Parquet under {args.data}; {time.perf_counter() - t0:.1f} s to "
        f"write or reuse); load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_analysis_out_") as tmp:
        out = Path(tmp)
        _, a1 = timed("(a) perwatt report", args, "report", args.resamples, out / "a1.pkl")
        _, a2 = timed("(a) perwatt route ", args, "route", args.resamples, out / "a2.pkl")
        report = json.loads((out / "a1.json").read_text())
        route = json.loads((out / "a2.json").read_text())
        wall, cpu, peak = a1.wall + a2.wall, a1.cpu + a2.cpu, max(a1.peak, a2.peak)
        print(
            f"(a) perwatt, both commands: {wall:.2f} s ({cpu:.2f} s CPU), peak RSS {peak:.2f} GiB"
        )
        r = route["routing"]
        oracle = next(o for o in r["outcomes"] if o["policy"] == "oracle")
        cov = r["coverage"]["everything"]
        print(
            f"    coverage of all {args.models}: {cov['value']:.4f} [{cov['low']:.4f}, "
            f"{cov['high']:.4f}]; best 3: {r['coverage']['best_by_size'][2]['coverage']:.4f}; "
            f"oracle vs always-{r['reference']}: accuracy {oracle['accuracy']['value']:.4f}, "
            f"energy saved {oracle['energy_saved']['value']:.4f} "
            f"[{oracle['energy_saved']['low']:.4f}, {oracle['energy_saved']['high']:.4f}]"
        )
        if args.skip_plain:
            return
        try:
            import pandas  # noqa: F401
        except ImportError:
            print("(b) skipped: pandas is not installed (`.venv/bin/pip install -e '.[bench]'`)")
            return
        resamples = args.plain_resamples or args.resamples
        plain_rep, b1 = timed("(b) plain report  ", args, "plain-report", resamples, out / "b1.pkl")
        plain_rt, b2 = timed("(b) plain route   ", args, "plain-route", resamples, out / "b2.pkl")
    pw, pcpu = b1.wall + b2.wall, b1.cpu + b2.cpu
    note = f" ({resamples} resamples, perwatt {args.resamples})"
    note = note if resamples != args.resamples else ""
    print(
        f"(b) plain, both: {pw:.2f} s ({pcpu:.2f} s CPU), peak RSS "
        f"{max(b1.peak, b2.peak):.2f} GiB{note}"
    )
    print(
        f"ratio plain / perwatt: {pw / wall:.1f}× wall, {pcpu / cpu:.1f}× CPU (report "
        f"{b1.wall / a1.wall:.1f}×, route {b2.wall / a2.wall:.1f}×)"
    )
    agree = check(report, route, plain_rep, plain_rt)
    print(
        f"agreement: point values within {agree.point:.1e} relative ({agree.where_point}); "
        f"interval ends within {agree.interval:.1%} of the interval width "
        f"({agree.where_interval}; Monte Carlo error)"
    )


if __name__ == "__main__":
    main()
