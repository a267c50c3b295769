"""Energy of any command, per domain, against an idle baseline — `perf stat` for joules."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

from perwatt.energy.idle import measure_idle
from perwatt.energy.sampler import EnergySampler
from perwatt.energy.sources import EnergySource, EnergySourceInfo
from perwatt.errors import PerwattError


@dataclass(frozen=True)
class DomainEnergy:
    """One domain's energy over the command: gross, idle baseline, and net of the baseline."""

    domain: str
    label: str
    gross_j: float
    mean_power_w: float
    idle_power_w: float
    idle_spread_w: float
    net_j: float


@dataclass(frozen=True)
class MeterResult:
    """What `perwatt meter` reports."""

    command: list[str]
    exit_code: int
    duration_s: float
    scope: str
    idle_seconds: float
    baseline: str
    interval_s: float
    domains: list[DomainEnergy]
    sources: list[EnergySourceInfo] = field(default_factory=list)

    @property
    def gross_j(self) -> float:
        return sum(d.gross_j for d in self.domains)

    @property
    def net_j(self) -> float:
        return sum(d.net_j for d in self.domains)


def meter_command(
    argv: Sequence[str],
    make_sources: Callable[[int | None], Sequence[EnergySource]],
    *,
    scope: Literal["machine", "process"] = "machine",
    idle_seconds: float = 2.0,
    interval_s: float = 0.05,
    stdout: IO[str] | None = None,
    on_sampling: Callable[[EnergySampler], None] | None = None,
) -> MeterResult:
    """Run `argv` to completion under the energy sampler and report energy per domain.

    scope "machine": the sources meter the whole machine (as RAPL and NVML do); an idle baseline
    is measured with the same sources for `idle_seconds` before the command starts, and net
    energy is gross minus that baseline over the command's duration.
    scope "process": the sources follow the command's process tree (`make_sources(pid)`), which
    keeps other tenants of a shared machine out of the figure; nothing of that tree exists before
    the command, so the baseline is the source's stated idle share, labelled as assumed.
    """
    if not argv:
        raise PerwattError("perwatt meter needs a command after --, e.g. perwatt meter -- sleep 1")
    if shutil.which(argv[0]) is None:
        raise PerwattError(f"command not found: {argv[0]}")
    process: subprocess.Popen[str] | None = None
    if scope == "process":
        process = subprocess.Popen(list(argv), stdout=stdout)
        sources = list(make_sources(process.pid))
        idle_seconds = 0.0
    else:
        sources = list(make_sources(None))
    sampler = EnergySampler(sources, interval_s=interval_s)
    sampler.start()
    if on_sampling is not None:  # e.g. the live exporter of --metrics-port
        on_sampling(sampler)
    try:
        time.sleep(idle_seconds)
        sampler.sample_now()
        t_start = time.monotonic() - sampler.t0
        if process is None:
            process = subprocess.Popen(list(argv), stdout=stdout)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            code = process.wait()
        sampler.sample_now()
        t_end = time.monotonic() - sampler.t0
    finally:
        sampler.stop()
    timeline = sampler.timeline()
    idle = measure_idle(timeline, 0.0, t_start) if idle_seconds > 0 else None
    infos = {s.domain: s.describe() for s in sources}
    duration = t_end - t_start
    domains = []
    for name, series in timeline.domains.items():
        gross = float(series.energy_between(t_start, t_end))
        if idle is not None:
            idle_w, spread = idle.power_w.get(name, 0.0), idle.spread_w.get(name, 0.0)
        else:
            idle_w, spread = infos[name].idle_watts or 0.0, 0.0
        domains.append(
            DomainEnergy(
                domain=name,
                label=series.source,
                gross_j=gross,
                mean_power_w=gross / duration if duration > 0 else 0.0,
                idle_power_w=idle_w,
                idle_spread_w=spread,
                net_j=gross - idle_w * duration,
            )
        )
    for source in sources:
        source.close()
    return MeterResult(
        command=list(argv),
        exit_code=code,
        duration_s=duration,
        scope=scope,
        idle_seconds=idle_seconds,
        baseline=(
            f"measured: mean power over {idle_seconds:g} s before the command"
            if idle is not None
            else "assumed: the source's stated idle share (nothing to measure before the command)"
        ),
        interval_s=interval_s,
        domains=domains,
        sources=[infos[d] for d in infos],
    )
