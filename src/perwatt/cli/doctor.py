"""`perwatt doctor`: what this machine offers for measuring energy."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from perwatt.cli._app import app, console, say


@app.command()
def doctor() -> None:
    """Which energy sources this machine has (and why not the others), CPU, accelerators."""
    from perwatt.energy import in_use, probe_all
    from perwatt.hardware import hardware_info

    info = hardware_info()
    cpu = info.cpu
    say(
        f"CPU  {cpu.model} (vendor {cpu.vendor}, family {cpu.family}, model "
        f"{cpu.model_number}); {cpu.logical_cores} logical cores, {cpu.usable_cores} usable"
    )
    say(f"memory  {info.memory_gib:.1f} GiB   virtualization  {info.virtualized}")  # fmt: skip
    if info.accelerators:
        for acc in info.accelerators:
            say(f"accelerator  {acc.kind} {acc.name}, driver {acc.driver}")
    else:
        say("accelerators  none found (no nvidia-smi)")
    table = Table(title="energy sources", header_style="bold")
    table.add_column("source")
    table.add_column("available")
    table.add_column("detail", overflow="fold")
    for status in probe_all():
        table.add_row(Text(status.name),
                      Text("yes", "green") if status.available else Text("no", "red"),
                      Text(status.detail))  # fmt: skip
    console.print(table)
    # What `perwatt run` would open here: the same selection a run makes, so they agree.
    use = in_use()
    labels = ", ".join(dict.fromkeys(use.labels))
    if use.measured:
        say(f"in use by perwatt run: {labels} (measured)", "green")
    else:
        say(f"in use by perwatt run: {labels} — no hardware energy counter perwatt can read "
            "here, so energy is estimated from CPU time and every figure is labelled "
            "'estimated'", "yellow")  # fmt: skip
