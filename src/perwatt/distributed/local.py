"""Run a sweep's cells one after another on this machine, into one store.

The store is a folder with one run directory per cell, named by the cell's id, plus
`cells.json` (each cell's coordinates, resources, where and how it ran) and `sweep.json` (the
sweep table's rows). A cell whose run directory holds a complete manifest is finished and is
never run again; a cell with a partial run (interrupted, or killed mid-write) is resumed with the
runner's own append-and-checkpoint resume, so no completed request is lost or repeated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.console import Console

from perwatt.distributed.spec import Cell, Sweep
from perwatt.errors import PerwattError
from perwatt.files import write_json
from perwatt.store import run_state

if TYPE_CHECKING:
    from perwatt.report.live import LiveExporter

CellStatus = Literal["finished", "partial", "absent"]
CELLS_FILE = "cells.json"


@dataclass(frozen=True)
class NodeInfo:
    """The machine a cell ran on (for Ray, the node's id as the cluster knows it)."""

    hostname: str
    ip: str | None = None
    node_id: str | None = None


@dataclass(frozen=True)
class CellOutcome:
    """A cell that is finished in the store: how it got there this time, and where it ran."""

    cell: Cell
    run_dir: Path
    how: Literal["ran", "resumed", "finished earlier"]
    node: NodeInfo | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class CellFailure:
    """A cell that did not finish, and why."""

    cell: Cell
    error: str


@dataclass(frozen=True)
class SweepOutcome:
    """The finished cells in the spec's order, and the cells that failed."""

    finished: list[CellOutcome]
    failed: list[CellFailure]

    def run_dirs(self) -> list[Path]:
        return [o.run_dir for o in self.finished]


def cell_status(run_dir: Path) -> CellStatus:
    """`finished` (a complete manifest), `partial` (a run to resume) or `absent`."""
    state = run_state(run_dir)
    if state == "complete":
        return "finished"
    if state is not None:
        return "partial"
    if run_dir.exists() and any(run_dir.iterdir()):
        raise PerwattError(
            f"{run_dir} is in the sweep's store under a cell's name but is not a perwatt run; "
            "move it away"
        )
    return "absent"


def check_local(sweep: Sweep) -> None:
    """A local sweep runs every cell on this machine: two kinds of hardware cannot both be it."""
    hardware = sweep.spec.hardware or []
    if len(hardware) > 1:
        names = ", ".join(h.name for h in hardware)
        raise PerwattError(
            f"{sweep.path} names {len(hardware)} kinds of hardware ({names}); a local sweep runs "
            "every cell on this machine, so run it on a cluster that has them with --ray ADDRESS"
        )


def run_local(sweep: Sweep, console: Console, exporter: LiveExporter | None = None) -> SweepOutcome:
    """Run the cells in order into the store; finished cells are skipped, partial ones resumed.
    With `exporter` (--metrics-port), each cell's live figures are served while it runs.

    A cell that fails (its server does not start, its endpoint is unreachable) is reported and
    the sweep goes on with the next; Ctrl-C stops the sweep, keeping the cell's completed
    requests for the next invocation to resume.
    """
    from perwatt.runner import run_model

    check_local(sweep)
    node = NodeInfo(hostname=_hostname())
    finished: list[CellOutcome] = []
    failed: list[CellFailure] = []
    total = len(sweep.cells)
    for index, cell in enumerate(sweep.cells, start=1):
        run_dir = sweep.store / cell.cell_id
        status = cell_status(run_dir)
        if status == "finished":
            finished.append(CellOutcome(cell, run_dir, "finished earlier"))
            continue
        resume = status == "partial"
        verb = "resuming" if resume else "running"
        console.print(
            f"[bold]cell {index}/{total}[/bold] {verb} {cell.label()} [dim]({cell.cell_id})[/dim]",
            highlight=False,
        )
        started = time.monotonic()
        try:
            outcome = run_model(cell.run_spec(run_dir, resume=resume), cell.model, console,
                                exporter=exporter)  # fmt: skip
        except PerwattError as exc:
            failed.append(CellFailure(cell, str(exc)))
            console.print(f"[red]cell {cell.cell_id} failed:[/red] {exc}", highlight=False)
            continue
        done = CellOutcome(
            cell,
            outcome.run_dir,
            "resumed" if resume else "ran",
            node=node,
            seconds=time.monotonic() - started,
        )
        finished.append(done)
        record_cells(sweep, [done], backend="local")
    return SweepOutcome(finished=finished, failed=failed)


def pending_cells(sweep: Sweep) -> tuple[list[Cell], list[CellOutcome]]:
    """The cells still to run, and those already finished in the store."""
    todo: list[Cell] = []
    done: list[CellOutcome] = []
    for cell in sweep.cells:
        run_dir = sweep.store / cell.cell_id
        if cell_status(run_dir) == "finished":
            done.append(CellOutcome(cell, run_dir, "finished earlier"))
        else:
            todo.append(cell)
    return todo, done


@dataclass(frozen=True)
class CellRecord:
    """One line of `cells.json`: a cell's coordinates and, once finished, where it ran."""

    cell_id: str
    model: str
    target: str | None
    workload: str
    load: str
    server: str | None
    resources: dict[str, float]
    run_dir: str
    status: CellStatus
    backend: str | None = None
    node: NodeInfo | None = None
    seconds: float | None = None
    how: str | None = None
    finished_at: str | None = None


def read_cell_records(store: Path) -> dict[str, CellRecord]:
    """`cells.json` of a store, by cell id (empty when there is none or it cannot be read)."""
    path = store / CELLS_FILE
    try:
        rows = json.loads(path.read_text())["cells"]
        return {r["cell_id"]: CellRecord(**r | {"node": _node(r.get("node"))}) for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def record_cells(sweep: Sweep, outcomes: list[CellOutcome], *, backend: str) -> None:
    """Update `cells.json`: every cell of the spec, with where and how the finished ones ran.

    Placement written by an earlier invocation is kept, so the file always says which node
    measured each finished cell.
    """
    earlier = read_cell_records(sweep.store)
    now = {o.cell.cell_id: o for o in outcomes}
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for cell in sweep.cells:
        status = cell_status(sweep.store / cell.cell_id)
        placed = now.get(cell.cell_id)
        previous = earlier.get(cell.cell_id)
        if placed is not None and placed.node is not None:
            where = {"backend": backend, "node": placed.node, "how": placed.how,
                     "seconds": round(placed.seconds or 0.0, 3), "finished_at": stamp}  # fmt: skip
        elif previous is not None and status == "finished":
            where = {"backend": previous.backend, "node": previous.node, "how": previous.how,
                     "seconds": previous.seconds, "finished_at": previous.finished_at}  # fmt: skip
        else:
            where = {}
        rows.append(
            CellRecord(
                cell_id=cell.cell_id,
                model=cell.model,
                target=cell.target,
                workload=cell.workload,
                load=cell.load,
                server=cell.server,
                resources=cell.request.as_ray(),
                run_dir=cell.cell_id,
                status=status,
                **where,
            )
        )
    write_json(sweep.store / CELLS_FILE, {"spec": str(sweep.path), "cells": rows})


def _node(data: dict[str, str | None] | None) -> NodeInfo | None:
    return NodeInfo(**data) if data else None


def _hostname() -> str:
    import socket

    return socket.gethostname()
