"""Energy providers: the one registry of where joules can come from (DESIGN.md, "Energy").

Every module of this package that defines `PROVIDERS` (a tuple of `Provider`) adds a kind of
source: each has `probe()` (what this machine offers, and why not, for `perwatt doctor`) and
`open()` (the sources a run reads). `open_sources` picks them in DESIGN.md's order — the
user's exporters when given, else every hardware counter found (a system-on-chip's counters
alone, since they already cover its CPU, GPU and memory), else the CPU-time estimate — and
`perwatt doctor` reports what `open_sources` would open, so the two can never disagree.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from perwatt.energy.sources import (
    EnergySource,
    Provider,
    ProviderKind,
    SourceRequest,
    SourceStatus,
)


@cache
def providers() -> tuple[Provider, ...]:
    """Every provider, from the modules of this package that define `PROVIDERS`, in order."""
    found: list[Provider] = []
    package = importlib.import_module("perwatt.energy")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_") or module.name == "providers":
            continue
        loaded = importlib.import_module(f"perwatt.energy.{module.name}")
        found += getattr(loaded, "PROVIDERS", ())
    kinds = ("exporter", "counter", "estimate")
    return tuple(sorted(found, key=lambda p: (kinds.index(p.kind), p.order, p.name)))


def probe_all() -> list[SourceStatus]:
    """What every provider finds on this machine (never raises)."""
    return [status for p in providers() for status in p.probe()]


def open_sources(request: SourceRequest) -> list[EnergySource]:
    """The sources a run reads, by DESIGN.md's order of preference."""
    if request.prometheus:
        return _open_kind("exporter", request)
    if not request.prefer_estimate:
        counters = _open_counters(request)
        if counters:
            return counters
    return _open_kind("estimate", request)


def _open_kind(kind: ProviderKind, request: SourceRequest) -> list[EnergySource]:
    return [s for p in providers() if p.kind == kind for s in p.open(request)]


def _open_counters(request: SourceRequest) -> list[EnergySource]:
    opened: list[EnergySource] = []
    for p in providers():
        if p.kind != "counter":
            continue
        sources = p.open(request)
        if sources and p.exclusive:
            for s in opened:
                s.close()
            return sources
        opened += sources
    return opened


@dataclass(frozen=True)
class InUse:
    """What a run here would read: each source's label and scope (for `perwatt doctor`)."""

    labels: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return bool(self.labels) and all(label.startswith("measured:") for label in self.labels)


def in_use(request: SourceRequest | None = None) -> InUse:
    """Open what a run would open, describe it, and close it again."""
    sources: Sequence[EnergySource] = open_sources(request or SourceRequest())
    try:
        infos = [s.describe() for s in sources]
    finally:
        for s in sources:
            s.close()
    return InUse([i.label for i in infos], [i.scope for i in infos])
