"""Energy: providers of sources (counters, exporters, an estimate), the sampler, the idle
baseline and attribution."""

from perwatt.energy.attribution import Attribution, attribute
from perwatt.energy.idle import IdleBaseline, measure_idle
from perwatt.energy.providers import (
    InUse,
    SourceRequest,
    in_use,
    open_sources,
    probe_all,
    providers,
)
from perwatt.energy.sampler import EnergySampler
from perwatt.energy.sources import (
    DEFAULT_IDLE_WATTS_PER_CORE,
    DEFAULT_WATTS_PER_CORE,
    ESTIMATE_LABEL,
    CpuTimeEstimator,
    EnergySource,
    EnergySourceInfo,
    SourceStatus,
)
from perwatt.energy.timeline import (
    DomainSeries,
    PowerTimeline,
    TimelineAnomaly,
    TimelineRow,
)

__all__ = [
    "DEFAULT_IDLE_WATTS_PER_CORE",
    "DEFAULT_WATTS_PER_CORE",
    "ESTIMATE_LABEL",
    "Attribution",
    "CpuTimeEstimator",
    "DomainSeries",
    "EnergySampler",
    "EnergySource",
    "EnergySourceInfo",
    "IdleBaseline",
    "InUse",
    "PowerTimeline",
    "SourceRequest",
    "SourceStatus",
    "TimelineAnomaly",
    "TimelineRow",
    "attribute",
    "in_use",
    "measure_idle",
    "open_sources",
    "probe_all",
    "providers",
]
