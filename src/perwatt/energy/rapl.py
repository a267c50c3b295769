"""CPU package and DRAM energy from RAPL through the Linux powercap interface.

Each zone under /sys/class/powercap/intel-rapl:N (and its sub-zones, e.g. dram) exposes
`energy_uj` — a counter that wraps at `max_energy_range_uj` — and its `name`. AMD Zen CPUs use
the same interface. This is the file Zeus's RAPL layer reads too; perwatt reads it directly so
that wraps are unwrapped per sample by `CounterTracker` and every wrap, reset or stall lands in the
run's manifest.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Callable
from pathlib import Path

from perwatt.energy.counters import CounterTracker
from perwatt.energy.sources import (
    EnergySource,
    EnergySourceInfo,
    Provider,
    SourceRequest,
    SourceStatus,
)
from perwatt.errors import PerwattError

POWERCAP = Path("/sys/class/powercap")


class RaplSource(EnergySource):
    """One RAPL zone (a CPU package, or its DRAM) as a cumulative energy source."""

    label = "measured:rapl"

    def __init__(self, zone: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.zone = zone
        try:
            name = (zone / "name").read_text().strip()
            max_uj = float((zone / "max_energy_range_uj").read_text())
            self._file = open(zone / "energy_uj", "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise PerwattError(f"cannot read RAPL zone {zone}: {exc.strerror or exc}") from None
        # intel-rapl:0 is "package-0"; its sub-zone intel-rapl:0:1 may be "dram".
        parent = zone.name.split(":")
        self.domain = name if len(parent) <= 2 else f"{name}-{parent[1]}"
        self._clock = clock
        self.tracker = CounterTracker(max_range_j=max_uj / 1e6)
        self.read()

    def _raw_j(self) -> float:
        return int(os.pread(self._file.fileno(), 64, 0)) / 1e6

    def read(self) -> float:
        return self.tracker.update(self._raw_j(), self._clock())

    def close(self) -> None:
        self._file.close()

    def describe(self) -> EnergySourceInfo:
        updates = self.tracker.update_note()
        return EnergySourceInfo(
            domain=self.domain,
            label=self.label,
            method=(
                f"measured: RAPL energy counter {self.zone}/energy_uj (wraps at "
                f"{self.tracker.max_range_j:.6g} J, unwrapped per sample){updates}"
            ),
            scope="the whole CPU package (every process on it)",
            resolution_j=1e-6,
        )


def rapl_zones(root: Path = POWERCAP) -> list[Path]:
    """Readable RAPL zones (packages and their sub-zones), in a stable order."""
    zones = sorted(p for p in root.glob("intel-rapl:*") if (p / "energy_uj").is_file())
    return [z for z in zones if os.access(z / "energy_uj", os.R_OK)]


_RAPL = "rapl (CPU package/DRAM)"


def _rapl() -> SourceStatus:
    label = "measured:rapl"
    zones = sorted(glob.glob("/sys/class/powercap/intel-rapl*/energy_uj"))
    if not zones:
        return SourceStatus(
            _RAPL,
            False,
            "no /sys/class/powercap/intel-rapl*: RAPL is not exposed (typical in a VM or "
            "container)",
            label,
        )
    readable = []
    for zone in zones:
        with contextlib.suppress(OSError, ValueError), open(zone) as handle:
            int(handle.read().strip())
            readable.append(zone)
    if not readable:
        return SourceStatus(
            _RAPL,
            False,
            f"{len(zones)} RAPL zone(s) exist but energy_uj is not readable (root only since "
            "Linux 5.10; add a udev rule or run as root)",
            label,
        )
    return SourceStatus(_RAPL, True, f"{len(readable)} readable zone(s)", label)


def _open(request: SourceRequest) -> list[EnergySource]:
    return [RaplSource(zone) for zone in rapl_zones()]


PROVIDERS = (Provider("rapl (CPU package/DRAM)", "counter", lambda: [_rapl()], _open, order=2),)
