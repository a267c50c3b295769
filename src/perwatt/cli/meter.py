"""`perwatt meter -- COMMAND ...`: the energy of any command, like `perf stat` for joules."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from perwatt.cli._app import app, console
from perwatt.energy.sources import DEFAULT_WATTS_PER_CORE


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def meter(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON only (the command's stdout goes to stderr).")
    ] = False,
    scope: Annotated[
        str, typer.Option(help="machine (like RAPL/NVML) or process (the command's tree).")
    ] = "machine",
    idle_seconds: Annotated[float, typer.Option(help="Idle baseline before the command.")] = 2.0,
    interval: Annotated[float, typer.Option(help="Sampling interval in seconds.")] = 0.05,
    cpu_watts_per_core: Annotated[
        float, typer.Option(help="Estimator: watts per busy core.")
    ] = DEFAULT_WATTS_PER_CORE,
    cpu_idle_watts: Annotated[
        float | None, typer.Option(help="Estimator: the machine's idle share in watts.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the live energy for Prometheus on /metrics at this port."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="The address --metrics-port binds.")] = (
        "127.0.0.1"
    ),
) -> None:
    """Energy of COMMAND per domain, with an idle baseline; exits with the command's code."""
    from perwatt.energy import EnergySampler, EnergySource, SourceRequest, open_sources
    from perwatt.energy.meter import meter_command
    from perwatt.errors import PerwattError

    if interval <= 0 or idle_seconds < 0:
        raise PerwattError("--interval must be positive and --idle-seconds not negative")
    if scope not in ("machine", "process"):
        raise PerwattError(f"--scope must be machine or process, not {scope!r}")

    def make_sources(pid: int | None) -> list[EnergySource]:
        # The whole machine: hardware counters when present, else the estimate. A counter
        # cannot be scoped to one process tree; the CPU-time estimate can.
        return open_sources(SourceRequest(pid=pid, watts_per_core=cpu_watts_per_core,
                                          idle_watts=cpu_idle_watts,
                                          prefer_estimate=pid is not None))  # fmt: skip

    from perwatt.report.live import LiveRun, serving

    # A busy --metrics-port fails here, before the command starts.
    with serving(metrics_host, metrics_port) as exporter:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        view = LiveRun(run_id=f"meter-{stamp}", requests=False)  # energy and power only

        def show(sampler: EnergySampler) -> None:
            if exporter is not None:
                view.sampler = sampler
                exporter.show(view)

        result = meter_command(
            ctx.args,
            make_sources,
            scope=scope,  # type: ignore[arg-type]
            idle_seconds=idle_seconds,
            interval_s=interval,
            stdout=sys.stderr if as_json else None,
            on_sampling=show,
        )
        view.end()
    if as_json:
        payload = dataclasses.asdict(result) | {"gross_j": result.gross_j, "net_j": result.net_j}
        print(json.dumps(payload, indent=2))
    else:
        table = Table(title=f"perwatt meter: {' '.join(result.command)}", header_style="bold")
        for name in ("domain", "energy", "gross J", "mean W", "idle W (±spread)", "net J"):
            table.add_column(name, justify="left" if name in ("domain", "energy") else "right")
        for d in result.domains:
            idle = f"{d.idle_power_w:.2f} (±{d.idle_spread_w:.2f})"
            table.add_row(d.domain, d.label, f"{d.gross_j:.2f}", f"{d.mean_power_w:.2f}", idle,
                          f"{d.net_j:.2f}")  # fmt: skip
        console.print(table)
        console.print(
            f"{result.duration_s:.3f} s elapsed; scope {result.scope}; baseline {result.baseline}; "
            f"sampled every {result.interval_s * 1000:g} ms; exit code {result.exit_code}"
        )
        for source in result.sources:
            console.print(f"[dim]{source.label}: {source.method}[/dim]")
    raise typer.Exit(result.exit_code)
