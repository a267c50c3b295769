"""`perwatt sweep SPEC.yaml`: a grid of runs, locally or on a Ray cluster, into one store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from perwatt.cli._app import app, console, print_sweep
from perwatt.errors import PerwattError

if TYPE_CHECKING:
    from perwatt.distributed.local import SweepOutcome
    from perwatt.distributed.spec import Sweep


@app.command()
def sweep(
    spec_file: Annotated[
        Path, typer.Argument(metavar="SPEC.yaml", help="The sweep spec (see examples/sweep.yaml).")
    ],
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run each cell as a task on this Ray cluster (host:port, or auto).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The sweep's store (default: the spec's `out`, else runs/sweep-NAME)."),
    ] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="List the cells and their state; run nothing.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve each cell's live figures for Prometheus on /metrics here."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="The address --metrics-port binds.")] = (
        "127.0.0.1"
    ),
) -> None:
    """Run every cell of a sweep (models × hardware × workloads × loads × server settings).

    Each cell is a normal run directory in the store, named by its cell id. Running the same
    spec again skips finished cells and resumes partial ones; the sweep table covers them all.
    """
    from perwatt.distributed.local import check_local, pending_cells, record_cells, run_local
    from perwatt.distributed.spec import load_sweep

    loaded = load_sweep(spec_file, out=out)
    if plan:
        console.print(_plan_table(loaded))
        return
    if ray_address is None:
        check_local(loaded)
    elif metrics_port is not None:
        raise PerwattError(
            "--metrics-port serves a local sweep; on Ray each cell runs on its worker"
        )
    _, done = pending_cells(loaded)
    where = f"Ray cluster at {ray_address}" if ray_address else "this machine"
    console.print(
        f"sweep {spec_file}: {_cells(len(loaded.cells))} on {where}, {len(done)} finished earlier; "
        f"store {loaded.store}",
        highlight=False,
        soft_wrap=True,
    )
    if ray_address is None:
        from perwatt.report.live import serving

        with serving(metrics_host, metrics_port) as exporter:
            outcome = run_local(loaded, console, exporter)
    else:
        from perwatt.distributed.ray_backend import run_on_ray

        outcome = run_on_ray(loaded, ray_address, console)
    record_cells(loaded, [], backend="ray" if ray_address else "local")
    if outcome.finished:
        _print_sweep_table(loaded, outcome)
    if outcome.failed:
        reasons = "; ".join(f"{f.cell.cell_id}: {f.error}" for f in outcome.failed)
        raise PerwattError(
            f"{len(outcome.failed)} of {len(loaded.cells)} cells failed ({reasons}); "
            "run the same command again to retry them"
        )


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _print_sweep_table(loaded: Sweep, outcome: SweepOutcome) -> None:
    """`perwatt run`'s sweep table, one row per finished cell, and the same rows as sweep.json.

    The load column also names the cell's other coordinates (hardware or endpoint, workload,
    server settings) where the grid varies them, so two cells never share a row label.
    """
    several_workloads = len({c.workload for c in loaded.cells}) > 1
    labels, extra = [], []
    for done in outcome.finished:
        cell = done.cell
        where = [cell.target, cell.workload if several_workloads else None, cell.server]
        labels.append(" · ".join([cell.spec.load_label(), *(p for p in where if p)]))
        extra.append({"cell_id": cell.cell_id, "target": cell.target, "server": cell.server,
                      "resources": cell.request.as_ray()})  # fmt: skip
    print_sweep([o.run_dir for o in outcome.finished], loaded.store / "sweep.json",
                labels=labels, extra=extra)  # fmt: skip


def _plan_table(loaded: Sweep) -> Table:
    """The cells in the order they run, with the resources each asks for and its state."""
    from perwatt.distributed.local import cell_status

    table = Table(title=f"sweep {loaded.path}: {len(loaded.cells)} cells", header_style="bold")
    rows = [
        {
            "cell": cell.cell_id,
            "model": cell.model,
            "target": cell.target or "–",
            "workload": cell.workload,
            "load": cell.load,
            "server": cell.server or "–",
            "needs": cell.request.describe(),
            "state": cell_status(loaded.store / cell.cell_id),
        }
        for cell in loaded.cells
    ]
    # Columns that say nothing in this sweep (every cell "–") are left out, so it fits 80.
    names = [n for n in rows[0] if any(r[n] != "–" for r in rows)] if rows else []
    for name in names:
        # Ids and states are copied and grepped: never broken; the rest folds.
        fixed = name in ("cell", "state")
        table.add_column(name, no_wrap=fixed, overflow="ellipsis" if fixed else "fold")
    for row in rows:
        table.add_row(*(row[n] for n in names))
    return table
