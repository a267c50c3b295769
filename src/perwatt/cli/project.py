"""`perwatt project`: from J/query to megawatts, accelerators, racks, MWh/year, cost and CO2;
the reverse from a cluster description; and the energy of a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from perwatt.analysis.projection import DEFAULT_GRID_G_PER_KWH, DEFAULT_PUE
from perwatt.analysis.units import DEFAULT_USD_PER_KWH
from perwatt.cli._app import JsonOption, app, console, write_json_out
from perwatt.errors import PerwattError


@app.command()
def project(
    j_per_query: Annotated[
        float | None, typer.Option(help="Energy per query in joules (stated by you).")
    ] = None,
    run: Annotated[
        Path | None, typer.Option(help="Take J/query from this run directory (measured).")
    ] = None,
    queries_per_day: Annotated[
        float | None, typer.Option(help="Forward: queries served per day.")
    ] = None,
    accelerators: Annotated[
        int | None,
        typer.Option(help="Reverse: the cluster's accelerators (training: how many train)."),
    ] = None,
    train_flops: Annotated[
        float | None, typer.Option(help="Training: total FLOPs of the run (e.g. 3.8e25).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="Hardware profile: h100-sxm, h200-sxm, a100-sxm, b200, gb200-nvl72."),
    ] = None,
    accelerator_w: Annotated[
        float | None, typer.Option(help="Accelerator power (W), overriding the profile.")
    ] = None,
    per_rack: Annotated[int | None, typer.Option(help="Accelerators per rack.")] = None,
    rack_kw: Annotated[float | None, typer.Option(help="Power per rack (kW).")] = None,
    flops_per_s: Annotated[
        float | None, typer.Option(help="Peak FLOP/s per accelerator (training).")
    ] = None,
    pue: Annotated[float, typer.Option(help="Power usage effectiveness of the facility.")] = (
        DEFAULT_PUE
    ),
    utilisation: Annotated[
        float | None,
        typer.Option(
            help="Average draw / provisioned power (default 0.5); for training, "
            "the MFU (default 0.4)."
        ),
    ] = None,
    usd_per_kwh: Annotated[float, typer.Option(help="Electricity price.")] = DEFAULT_USD_PER_KWH,
    grid_g_per_kwh: Annotated[
        float, typer.Option(help="Grid carbon intensity (default: world average 2023).")
    ] = DEFAULT_GRID_G_PER_KWH,
    json_out: JsonOption = None,
) -> None:
    """Project J/query to a fleet: MW, accelerators, racks, MWh/year, cost and CO2.

    Forward from --j-per-query (or --run) and --queries-per-day; reverse from --accelerators;
    training energy from --train-flops. Every assumption is printed with the result.
    """
    from perwatt.analysis.projection import (
        DEFAULT_MFU,
        DEFAULT_UTILISATION,
        ClusterProjection,
        Economics,
        FleetProjection,
        TrainingProjection,
        project_cluster,
        project_fleet,
        project_training,
        resolve_profile,
    )

    if j_per_query is not None and run is not None:
        raise PerwattError("give --j-per-query or --run, not both")
    training = train_flops is not None
    if (
        not training
        and accelerators is None
        and (queries_per_day is None or (j_per_query is None and run is None))
    ):
        raise PerwattError(
            "give --j-per-query (or --run) and --queries-per-day; or --accelerators for a "
            "cluster; or --train-flops for training"
        )
    hw = resolve_profile(profile, accelerator_w=accelerator_w, per_rack=per_rack,
                         rack_kw=rack_kw, flops_per_s=flops_per_s)  # fmt: skip
    default_u = DEFAULT_MFU if training else DEFAULT_UTILISATION
    econ = Economics(pue=pue, utilisation=default_u if utilisation is None else utilisation,
                     usd_per_kwh=usd_per_kwh, grid_g_per_kwh=grid_g_per_kwh)  # fmt: skip
    source, energy_label = "stated", "stated"
    if run is not None:
        from perwatt.analysis.summaries import summaries_of
        from perwatt.store import read_run

        (summary,) = summaries_of([read_run(run)])
        if summary.energy_per_query_j.value is None:
            raise PerwattError(f"run {run} has no requests to take J/query from")
        j_per_query = summary.energy_per_query_j.value
        source, energy_label = summary.run_id, summary.energy_label

    from perwatt.report.terminal import print_projection

    result: FleetProjection | ClusterProjection | TrainingProjection
    if training:
        assert train_flops is not None
        result = project_training(train_flops, hw, econ, accelerators=accelerators)
    elif accelerators is not None:
        result = project_cluster(accelerators, hw, econ, j_per_query=j_per_query,
                                 energy_label=energy_label if j_per_query else None)  # fmt: skip
    else:
        assert j_per_query is not None and queries_per_day is not None
        result = project_fleet(j_per_query, queries_per_day, hw, econ, source=source,
                               energy_label=energy_label)  # fmt: skip
    print_projection(console, result)
    write_json_out(json_out, result)
