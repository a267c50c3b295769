"""Run a sweep's cells as Ray tasks on an existing cluster; gather the runs into the head's store.

Each cell is one Ray task that asks for the cell's resources (`num_cpus`, `num_gpus`, custom
resources such as `accelerator:h100` that the user's nodes declare with `ray start --resources`),
so it lands on a node that has them. The task runs the cell with `run_model` into a scratch
directory on that node (`$PERWATT_SCRATCH`, else the system temp dir), so the energy it measures
is that node's; once the run is complete it ships the run directory back as the bytes of a tar
archive, and the head writes it into the store under a temporary name and renames it into place.

A node lost mid-cell takes its partial run with it: Ray retries the task (`max_retries`) on a
node that has the resources, which starts the cell afresh. Nothing partial ever reaches the
store, so runs from two machines are never merged into one.

Before anything runs, every cell's request is checked against the nodes of the cluster; a cell
that no node can take is an error that names the cell and the resource (exit 2).

Every node needs perwatt installed (with its models), like the head.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from perwatt.distributed.local import (
    CellFailure,
    CellOutcome,
    NodeInfo,
    SweepOutcome,
    cell_status,
    pending_cells,
    record_cells,
)
from perwatt.distributed.spec import Cell, Sweep
from perwatt.errors import PerwattError
from perwatt.redact import redact_argv
from perwatt.store import (
    ITEMS_FILE,
    MANIFEST_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SERVER_LOG_FILE,
    SUMMARY_FILE,
    read_run,
)

# Where a node writes the run of a cell in progress (default: the system temp dir).
SCRATCH_ENV = "PERWATT_SCRATCH"
# How often the head looks at the cluster while no cell lands (for cells whose node was lost).
WATCH_INTERVAL_S = 10.0
_RUN_FILES = (REQUESTS_FILE, POWER_FILE, SUMMARY_FILE, MANIFEST_FILE)
# Shipped when the run has them (runs of older versions, or of an external endpoint, may not).
_OPTIONAL_FILES = (ITEMS_FILE, SERVER_LOG_FILE)
# Resources every Ray node carries that say nothing about the hardware a user asked for.
_BOOKKEEPING = ("memory", "object_store_memory")


@dataclass(frozen=True)
class ShippedRun:
    """A complete run directory on its way from a node to the head."""

    cell_id: str
    archive: bytes
    node: NodeInfo
    seconds: float


@dataclass(frozen=True)
class NodeResources:
    """A live node of the cluster and the resources it declares."""

    node_id: str
    ip: str
    resources: dict[str, float]


# --- on the node ----------------------------------------------------------------------------


def run_cell_on_node(cell: Cell, command_line: list[str]) -> ShippedRun:
    """The Ray task: run the cell into scratch on this node and return its run as a tar.

    `command_line` is the head's (`perwatt sweep ... --ray ...`): the manifest records the
    command that asked for the run, not the Ray worker's. The scratch directory is removed
    whether the run finishes or fails; if the node dies, it is left behind there, never shipped.
    """
    from perwatt.runner import RunInterrupted, run_model

    root = Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"perwatt-{cell.cell_id}-", dir=root))
    started = time.monotonic()
    worker_argv = sys.argv
    sys.argv = list(command_line)
    try:
        outcome = run_model(cell.run_spec(scratch / cell.cell_id), cell.model, Console(quiet=True))
        archive = pack_run(outcome.run_dir, cell.cell_id)
    except RunInterrupted:
        # RunInterrupted does not survive pickling; the head only needs to know it stopped.
        raise PerwattError(f"cell {cell.cell_id} was interrupted on its node") from None
    finally:
        sys.argv = worker_argv
        shutil.rmtree(scratch, ignore_errors=True)
    return ShippedRun(cell.cell_id, archive, _this_node(), time.monotonic() - started)


def pack_run(run_dir: Path, name: str) -> bytes:
    """The run directory's files as an uncompressed tar (Parquet is compressed already)."""
    if cell_status(run_dir) != "finished":
        raise PerwattError(f"the run in {run_dir} is not complete; it is not shipped")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for file in _RUN_FILES:
            tar.add(run_dir / file, arcname=f"{name}/{file}")
        for file in _OPTIONAL_FILES:
            if (run_dir / file).is_file():
                tar.add(run_dir / file, arcname=f"{name}/{file}")
    return buffer.getvalue()


def _this_node() -> NodeInfo:
    import ray

    return NodeInfo(
        hostname=socket.gethostname(),
        ip=ray.util.get_node_ip_address(),
        node_id=ray.get_runtime_context().get_node_id(),
    )


# --- on the head ----------------------------------------------------------------------------


def land_run(store: Path, cell_id: str, archive: bytes) -> Path:
    """Write a shipped run into the store atomically: unpack beside it, check it, rename it in.

    A reader of the store sees the cell's directory either absent or whole. A partial run that
    an earlier local sweep left under the cell's name is replaced, never merged with this one.
    """
    store.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=f".incoming-{cell_id}-", dir=store))
    aside: Path | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            expected = {cell_id, *(f"{cell_id}/{f}" for f in (*_RUN_FILES, *_OPTIONAL_FILES))}
            names = set(tar.getnames())
            if not names <= expected or f"{cell_id}/{MANIFEST_FILE}" not in names:
                raise PerwattError(f"the run shipped for cell {cell_id} is not a run directory")
            tar.extractall(incoming, filter="data")
        run = incoming / cell_id
        if cell_status(run) != "finished":
            raise PerwattError(f"the run shipped for cell {cell_id} is not complete")
        read_run(run)  # the tables open: nothing torn in transit
        for file in run.iterdir():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
        target = store / cell_id
        if target.exists():
            aside = store / f".replaced-{cell_id}-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
        os.replace(run, target)
        _fsync_dir(store)
        return target
    except (tarfile.TarError, OSError) as exc:
        raise PerwattError(f"could not store the run of cell {cell_id}: {exc}") from None
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_resources(cells: Sequence[Cell], nodes: Sequence[NodeResources]) -> None:
    """Fail before anything runs when a cell asks for resources that no single node has."""
    unplaceable = [
        (cell, _missing(cell.request.as_ray(), nodes))
        for cell in cells
        if not any(_fits(cell.request.as_ray(), node) for node in nodes)
    ]
    if not unplaceable:
        return
    cell, why = unplaceable[0]
    others = [c.cell_id for c, _ in unplaceable[1:]]
    more = f" (so do {len(others)} more cells: {', '.join(others)})" if others else ""
    declared = sorted(
        {k for n in nodes for k in n.resources if not k.startswith("node:")} - set(_BOOKKEEPING)
    )
    raise PerwattError(
        f"cell {cell.cell_id} asks for {why}{more}; the cluster's nodes declare "
        f"{', '.join(declared) or 'no resources'}"
    )


def _fits(want: dict[str, float], node: NodeResources) -> bool:
    return all(node.resources.get(k, 0.0) >= v for k, v in want.items())


def _missing(want: dict[str, float], nodes: Sequence[NodeResources]) -> str:
    """Why no node fits, naming the resources: absent everywhere, too little, or not together."""
    most = {k: max((n.resources.get(k, 0.0) for n in nodes), default=0.0) for k in want}
    # Custom resources first: they name the hardware a user asked for.
    keys = sorted(want, key=lambda k: (k in ("CPU", "GPU"), k))
    absent = [k for k in keys if most[k] == 0]
    if absent:
        names = " and ".join(f"'{k}'" for k in absent)
        return f"resource{'s' if len(absent) > 1 else ''} {names}, which no node has"
    short = [k for k in keys if most[k] < want[k]]
    if short:
        return "; ".join(
            f"{want[k]:g} of resource '{k}', but no node has more than {most[k]:g}" for k in short
        )
    together = ", ".join(f"{k}={want[k]:g}" for k in keys)
    return f"{together} on one node, and no node has all of them"


def run_on_ray(sweep: Sweep, address: str, console: Console) -> SweepOutcome:
    """Run the unfinished cells as Ray tasks on the cluster at `address`, landing each run in
    the store as it completes; finished cells are never run again."""
    todo, finished = pending_cells(sweep)
    if not todo:
        return SweepOutcome(finished=finished, failed=[])
    ray = _import_ray()
    _probe(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PerwattError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        check_resources(todo, _live_nodes(ray))
        landed, failed = _submit_and_gather(ray, sweep, todo, console)
    finally:
        ray.shutdown()
    order = {c.cell_id: i for i, c in enumerate(sweep.cells)}
    finished = sorted([*finished, *landed], key=lambda o: order[o.cell.cell_id])
    return SweepOutcome(finished=finished, failed=failed)


def _submit_and_gather(
    ray: Any, sweep: Sweep, todo: list[Cell], console: Console
) -> tuple[list[CellOutcome], list[CellFailure]]:
    task = ray.remote(run_cell_on_node)
    partial = [c.cell_id for c in todo if cell_status(sweep.store / c.cell_id) == "partial"]
    if partial:
        console.print(
            f"[dim]{len(partial)} partial local cells start afresh on the cluster (a run is "
            f"never merged across machines): {', '.join(partial)}[/dim]",
            highlight=False,
        )
    pending = {
        task.options(
            num_cpus=cell.request.num_cpus,
            num_gpus=cell.request.num_gpus,
            resources=dict(cell.request.resources) or None,
            max_retries=sweep.spec.max_retries,
            retry_exceptions=False,  # a cell's own error (bad endpoint, ...) is not retried
            name=f"perwatt-cell:{cell.cell_id}",
        ).remote(cell, redact_argv(sys.argv)): cell
        for cell in todo
    }
    console.print(
        f"submitted {len(todo)} cells to the Ray cluster; {len(sweep.cells) - len(todo)} "
        "finished earlier",
        highlight=False,
    )
    landed: list[CellOutcome] = []
    failed: list[CellFailure] = []
    stranded: set[str] = set()
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WATCH_INTERVAL_S)
            if not ready:
                _warn_stranded(ray, list(pending.values()), stranded, console)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    shipped: ShippedRun = ray.get(ref)
                    run_dir = land_run(sweep.store, cell.cell_id, shipped.archive)
                except (ray.exceptions.RayError, PerwattError) as exc:
                    failed.append(CellFailure(cell, _reason(ray, exc)))
                    console.print(
                        f"[red]cell {cell.cell_id} failed:[/red] {_reason(ray, exc)}",
                        highlight=False,
                    )
                    continue
                outcome = CellOutcome(cell, run_dir, "ran", shipped.node, shipped.seconds)
                landed.append(outcome)
                record_cells(sweep, [outcome], backend="ray")
                console.print(
                    f"[green]✓[/green] {cell.label()} on {shipped.node.hostname} "
                    f"({shipped.node.ip}, node {(shipped.node.node_id or '')[:8]}) in "
                    f"{shipped.seconds:.1f}s [dim]({len(pending)} to go)[/dim]",
                    highlight=False,
                )
    except KeyboardInterrupt:
        # Interrupt the running cells: each stops its server; its partial run stays on its node.
        for ref in pending:
            ray.cancel(ref)
        raise
    return landed, failed


def _warn_stranded(ray: Any, cells: list[Cell], warned: set[str], console: Console) -> None:
    """Say once per cell when no live node can take it any more (its node was lost): Ray keeps
    it waiting for a node that has the resources to join, and so does the sweep."""
    nodes = _live_nodes(ray)
    for cell in cells:
        if cell.cell_id in warned or any(_fits(cell.request.as_ray(), n) for n in nodes):
            continue
        warned.add(cell.cell_id)
        console.print(
            f"[yellow]cell {cell.cell_id} waits: no live node has {cell.request.describe()} "
            "now; it runs when such a node joins (Ctrl-C stops the sweep)[/yellow]",
            highlight=False,
        )


def _live_nodes(ray: Any) -> list[NodeResources]:
    return [
        NodeResources(n["NodeID"], n["NodeManagerAddress"], dict(n["Resources"]))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def _reason(ray: Any, exc: BaseException) -> str:
    """One line saying why a cell failed: its own error, or what the cluster reported."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        cause = exc.cause
        return str(cause) if isinstance(cause, PerwattError) else f"{type(cause).__name__}: {cause}"
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _probe(address: str) -> None:
    """Fail within seconds when nothing listens at a host:port address (Ray itself retries a
    dead address for minutes). `auto` and other forms are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise PerwattError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
            "(start one with `ray start --head`, or give the address it printed)"
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise PerwattError(
            "--ray needs Ray on this machine and every node: pip install 'perwatt[ray]'"
        ) from None
    return ray
