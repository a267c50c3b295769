"""Sweeps on a real Ray cluster: a head and a worker started with `ray start`, all on loopback.

The cluster runs inside a network namespace that has only a loopback interface, so Ray reports
every node as 127.0.0.1 and none of its traffic leaves the machine; the driver (`perwatt sweep
--ray`) runs in the same namespace. Teardown ends the processes in that namespace by pid (not
`ray stop`, which stops every Ray process of the user on the machine) and deletes it.

The fast tests at the top exercise the head's side (resource check, shipping and landing a run)
without a cluster.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from conftest import make_manifest
from perwatt.distributed.local import cell_status
from perwatt.distributed.ray_backend import NodeResources, check_resources, land_run, pack_run
from perwatt.distributed.spec import load_sweep
from perwatt.errors import PerwattError
from perwatt.store import RunWriter, read_run

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
PERWATT = [sys.executable, "-m", "perwatt"]
HEAD_PORT = 6379
WORKER_PORT = 6400  # each worker's node-manager port, so a test can find its raylet
REPLACEMENT_PORT = 6401
# Keep Ray light on a small shared machine: no memory monitor, a small object store, one CPU.
RAY_ENV = {"RAY_memory_monitor_refresh_ms": "0", "RAY_USAGE_STATS_ENABLED": "0"}
NODE = ["--num-cpus", "1", "--object-store-memory", "100000000", "--disable-usage-stats"]


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- the head's side, no cluster --------------------------------------------------------------


def _cells(tmp_path: Path, hardware: str):
    spec = write(tmp_path, f"models: [smollm2-135m]\nhardware: [{hardware}]\n")
    return load_sweep(spec).cells


NODES = [
    NodeResources("head", "127.0.0.1", {"CPU": 1.0, "memory": 1e9, "node:127.0.0.1": 1.0}),
    NodeResources("worker", "127.0.0.1", {"CPU": 1.0, "accelerator:test": 1.0}),
]


def test_a_request_that_one_node_can_meet_passes(tmp_path):
    check_resources(_cells(tmp_path, '{name: t, resources: {"accelerator:test": 1}}'), NODES)


@pytest.mark.parametrize(
    ("hardware", "expected"),
    [
        ('{name: h, num_gpus: 1, resources: {"accelerator:h100": 1}}',
         "resources 'accelerator:h100' and 'GPU', which no node has"),
        ("{name: big, num_cpus: 4}", "4 of resource 'CPU', but no node has more than 1"),
        ('{name: t, num_cpus: 1, resources: {"accelerator:test": 2}}',
         "2 of resource 'accelerator:test'"),
    ],
)  # fmt: skip
def test_a_request_no_node_can_meet_names_the_cell_and_the_resource(tmp_path, hardware, expected):
    (cell,) = _cells(tmp_path, hardware)
    with pytest.raises(PerwattError) as err:
        check_resources([cell], NODES)
    assert f"cell {cell.cell_id} asks for" in str(err.value)
    assert expected in str(err.value)
    assert "declare CPU, accelerator:test" in str(err.value)


def test_resources_must_be_on_one_node(tmp_path):
    (cell,) = _cells(tmp_path, '{name: t, num_cpus: 1, resources: {"accelerator:test": 1}}')
    split = [
        NodeResources("a", "127.0.0.1", {"CPU": 1.0}),
        NodeResources("b", "127.0.0.1", {"accelerator:test": 1.0}),
    ]
    with pytest.raises(PerwattError, match="on one node, and no node has all of them"):
        check_resources([cell], split)


def _finished_run(path: Path, rows, status: str = "complete") -> Path:
    writer = RunWriter(path)
    manifest = make_manifest(path.name).model_copy(update={"status": status})
    writer.finalize(rows, [], manifest, {"n": len(rows)}, complete=status == "complete")
    return path


def test_a_shipped_run_lands_whole_and_replaces_a_partial_one(tmp_path, rows):
    archive = pack_run(_finished_run(tmp_path / "node" / "c1", rows), "c1")
    store = tmp_path / "store"
    partial = RunWriter(store / "c1")  # an interrupted local attempt of the same cell
    partial.append_request(rows[0])
    partial.close()

    landed = land_run(store, "c1", archive)
    assert landed == store / "c1"
    assert cell_status(landed) == "finished"
    assert not (landed / ".partial").exists()
    assert len(read_run(landed).records()) == len(rows)
    assert sorted(p.name for p in store.iterdir()) == ["c1"]  # nothing left beside it


def test_an_incomplete_or_foreign_archive_never_lands(tmp_path, rows):
    with pytest.raises(PerwattError, match="not complete"):
        pack_run(_finished_run(tmp_path / "i" / "c1", rows, "interrupted"), "c1")
    store = tmp_path / "store"
    # A run shipped under another cell's name, or with files outside its directory.
    for arcname in ("c2/manifest.json", "../escape.json"):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(arcname)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
        with pytest.raises(PerwattError, match="not a run directory"):
            land_run(store, "c1", buffer.getvalue())
    assert [p.name for p in store.iterdir()] == []
    assert not (tmp_path / "escape.json").exists()


def test_an_unknown_key_fails_before_connecting(tmp_path):
    spec = write(tmp_path, "models: [smollm2-135m]\nhardwar: [{name: t}]\n")
    result = subprocess.run(
        [*PERWATT, "sweep", str(spec), "--ray", "127.0.0.1:1", "--out", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown key 'hardwar'" in result.stderr
    assert not (tmp_path / "s").exists()


def test_an_address_where_no_cluster_listens_fails_fast(tmp_path):
    pytest.importorskip("ray", reason="the Ray tests need `pip install 'perwatt[ray]'`")
    spec = write(tmp_path, "models: [smollm2-135m]\nbase: {limit: 2}\n")
    result = subprocess.run(
        [*PERWATT, "sweep", str(spec), "--ray", "127.0.0.1:1", "--out", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr
    assert not (tmp_path / "s").exists()


# --- a real cluster ---------------------------------------------------------------------------


@dataclass
class Cluster:
    """A Ray head and worker in the network namespace `ns`, and where their cells write."""

    ns: str
    root: Path
    address: str = f"127.0.0.1:{HEAD_PORT}"
    scratch: dict[str, Path] = field(default_factory=dict)

    def run(self, *cmd: str, env: dict[str, str] | None = None, **kwargs):
        """Run a command inside the namespace."""
        full_env = {**os.environ, **RAY_ENV, **(env or {})}
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, *cmd],
            env=full_env, capture_output=True, text=True, **kwargs,
        )  # fmt: skip

    def popen(self, *cmd: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *cmd],
            env={**os.environ, **RAY_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def start_worker(self, name: str, port: int) -> None:
        """A worker node declaring `accelerator:test`, its cells writing under scratch[name]."""
        self.scratch[name] = self.root / f"scratch-{name}"
        started = self.run(
            RAY, "start", "--address", self.address, *NODE,
            "--resources", json.dumps({"accelerator:test": 1}),
            "--node-manager-port", str(port),
            env={"PERWATT_SCRATCH": str(self.scratch[name])}, timeout=120,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr[-2000:]

    def nodes(self) -> list[dict]:
        """The cluster's nodes as Ray reports them (asked from inside the namespace)."""
        keys = ("NodeID", "NodeManagerAddress", "NodeManagerPort", "Alive", "Resources")
        script = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False); "
            f"print(json.dumps([{{k: n[k] for k in {keys!r}}} for n in ray.nodes()]))"
        )
        result = self.run(sys.executable, "-c", script, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    def node_id(self, port: int, nodes: list[dict] | None = None) -> str:
        """The id of the live node whose node-manager port is `port`."""
        live = [n for n in nodes or self.nodes() if n["NodeManagerPort"] == port and n["Alive"]]
        (node,) = live
        return node["NodeID"]

    def sweep(self, spec: Path, store: Path, timeout: float = 400):
        return self.run(
            *PERWATT, "sweep", str(spec), "--ray", self.address, "--out", str(store),
            timeout=timeout,
        )  # fmt: skip


def _make_namespace() -> str:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip netns`) to keep the Ray cluster on loopback")
    name = f"pwray{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(
            "cannot make a network namespace to keep the Ray cluster on loopback "
            f"(needs root or CAP_SYS_ADMIN): {made.stderr.strip()}"
        )
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    return name


def _end_namespace(name: str) -> None:
    """End every process started in the namespace (by pid), then delete it."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        pids = _namespace_pids(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while _namespace_pids(name) and time.monotonic() < deadline:
            time.sleep(0.2)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def _namespace_pids(name: str) -> list[int]:
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in listed.stdout.split()]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="the Ray tests need `pip install 'perwatt[ray]'`")
    ns = _make_namespace()
    # A short root: Ray's socket paths live under its temp dir and must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pwray-", dir="/tmp"))
    try:
        cluster = Cluster(ns=ns, root=root)
        cluster.scratch["head"] = root / "scratch-head"
        head = cluster.run(
            RAY, "start", "--head", "--port", str(HEAD_PORT), *NODE,
            "--include-dashboard", "false", "--temp-dir", str(root / "ray"),
            env={"PERWATT_SCRATCH": str(cluster.scratch["head"])}, timeout=120,
        )  # fmt: skip
        assert head.returncode == 0, head.stderr[-2000:]
        cluster.start_worker("worker", WORKER_PORT)
        yield cluster
    finally:
        _end_namespace(ns)
        shutil.rmtree(root, ignore_errors=True)


GRID = """
    base: {limit: 2, idle_seconds: 0, max_tokens: 32}
    models: [smollm2-135m, gemma3-270m]
    load: [{concurrency: 1}, {concurrency: 2}]
    hardware: [{name: test, resources: {"accelerator:test": 1}}]
"""


def _runs(store: Path) -> dict[str, list[tuple[str, str]]]:
    """Each run directory of a store: its cell id → its (item id, status) pairs."""
    return {
        d.name: sorted((r.item_id, r.status) for r in read_run(d).records())
        for d in sorted(store.iterdir())
        if d.is_dir()
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_ray_sweep_gives_the_same_runs_as_a_local_sweep(cluster, tmp_path):
    nodes = cluster.nodes()
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}  # loopback only
    worker_id = cluster.node_id(WORKER_PORT, nodes)
    spec = write(tmp_path, GRID)
    cells = load_sweep(spec).cells

    local = subprocess.run(
        [*PERWATT, "sweep", str(spec), "--out", str(tmp_path / "local")],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    remote = cluster.sweep(spec, tmp_path / "ray")
    assert remote.returncode == 0, remote.stderr[-3000:]

    local_runs, ray_runs = _runs(tmp_path / "local"), _runs(tmp_path / "ray")
    assert set(ray_runs) == {c.cell_id for c in cells} == set(local_runs)
    assert ray_runs == local_runs
    for cell in cells:
        run = read_run(tmp_path / "ray" / cell.cell_id)
        assert run.manifest.status == "complete" and len(run.manifest.segments) == 1
        assert "--ray" in run.manifest.command_line  # the head's command, not Ray's worker
    # Only the worker declares accelerator:test, so every cell ran (and measured) there.
    placed = json.loads((tmp_path / "ray" / "cells.json").read_text())["cells"]
    assert {(c["backend"], c["node"]["node_id"], c["node"]["ip"]) for c in placed} == {
        ("ray", worker_id, "127.0.0.1")
    }
    rows = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert [r["cell_id"] for r in rows] == [c.cell_id for c in cells]
    assert "load sweep" in remote.stdout
    # Nothing half-landed in the store, nothing left in the node's scratch.
    assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")]
    assert list(cluster.scratch["worker"].iterdir()) == []

    again = cluster.sweep(spec, tmp_path / "ray", timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 finished earlier" in again.stdout and "submitted" not in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_cell_no_node_can_take_fails_before_anything_runs(cluster, tmp_path):
    spec = write(tmp_path, GRID.replace(
        'hardware: [{name: test, resources: {"accelerator:test": 1}}]',
        'hardware: [{name: test, resources: {"accelerator:test": 1}},'
        ' {name: h100, resources: {"accelerator:h100": 1}}]',
    ))  # fmt: skip
    result = cluster.sweep(spec, tmp_path / "store", timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    bad = [c.cell_id for c in load_sweep(spec).cells if c.target == "h100"]
    assert f"error: cell {bad[0]} asks for resource 'accelerator:h100', which no node has" in (
        result.stderr.replace("\n", "")
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "store").exists()  # not even the cells that could run


def _raylet_tree(port: int) -> list[psutil.Process]:
    """The raylet of the node with this node-manager port, and every process under it."""
    for proc in psutil.process_iter(["cmdline"]):
        if f"--node_manager_port={port}" in (proc.info["cmdline"] or []):
            return [proc, *proc.children(recursive=True)]
    return []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_losing_the_worker_mid_cell_reruns_the_cell_elsewhere_and_keeps_no_partial_run(
    cluster, tmp_path
):
    # Runs last: it kills the module's worker node.
    spec = write(tmp_path, """
        base: {limit: 6, idle_seconds: 0, max_tokens: 32}
        models: [smollm2-135m]
        load: [{concurrency: 1}, {concurrency: 2}]
        hardware: [{name: test, resources: {"accelerator:test": 1}}]
    """)  # fmt: skip
    store = tmp_path / "store"
    cells = load_sweep(spec).cells
    lost_id = cluster.node_id(WORKER_PORT)
    driver = cluster.popen(
        *PERWATT, "sweep", str(spec), "--ray", cluster.address, "--out", str(store)
    )
    try:
        # Wait until a cell on the worker has checkpointed a request, then lose the node.
        deadline = time.monotonic() + 240
        partial: list[Path] = []
        while not partial and time.monotonic() < deadline and driver.poll() is None:
            partial = [
                p
                for p in cluster.scratch["worker"].glob("perwatt-*/*/.partial/requests.jsonl")
                if p.read_text().count("\n") >= 1
            ]
            time.sleep(0.02)
        assert partial, "no cell started on the worker"
        tree = _raylet_tree(WORKER_PORT)
        assert tree, "the worker's raylet was not found"
        for proc in tree:
            proc.kill()
        # A replacement node with the resource joins; the lost cell is retried there.
        cluster.start_worker("replacement", REPLACEMENT_PORT)
        replacement_id = cluster.node_id(REPLACEMENT_PORT)
        _, err = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]

    lost_cell = partial[0].parent.parent.name
    assert lost_cell in {c.cell_id for c in cells}
    # The partial run stayed on the lost node; the store holds whole runs only.
    assert cell_status(partial[0].parent.parent) == "partial"
    assert sorted(p.name for p in store.iterdir()) == sorted(
        [c.cell_id for c in cells] + ["cells.json", "sweep.json"]
    )
    for cell in cells:
        run = read_run(store / cell.cell_id)
        assert run.manifest.status == "complete"
        assert len(run.manifest.segments) == 1  # one attempt: nothing merged from the lost one
        rows = run.records()
        # Rows are in completion order; at concurrency 2 that need not be request order.
        assert sorted(r.request_id for r in rows) == list(range(6))
        assert len({r.item_id for r in rows}) == 6
    placed = {c["cell_id"]: c["node"]["node_id"] for c in json.loads(
        (store / "cells.json").read_text())["cells"]}  # fmt: skip
    assert placed[lost_cell] == replacement_id != lost_id
    assert set(placed.values()) <= {replacement_id, lost_id}
