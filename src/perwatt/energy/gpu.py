"""GPU and SoC energy through Zeus's device layer: NVIDIA's NVML total-energy counter (Volta
and newer) and AMD's amdsmi behind one `get_gpus()` call; Apple Silicon and Jetson via `get_soc()`.

The counter is cumulative millijoules since the driver loaded; it does not wrap but restarts when
the driver reloads, which `CounterTracker` flags as a reset. Zeus is an optional extra
(`pip install 'perwatt[gpu]'`); without it, or without a GPU, there is no GPU source.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from perwatt.energy.counters import CounterTracker
from perwatt.energy.sources import (
    EnergySource,
    EnergySourceInfo,
    Provider,
    SourceRequest,
    SourceStatus,
)

GPU_EXTRA = "pip install 'perwatt[gpu]'"


class ZeusGpuSource(EnergySource):
    """One GPU's total-energy counter, read through `zeus.device.get_gpus()`."""

    def __init__(
        self, gpus: Any, index: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gpus = gpus
        self.index = index
        self.domain = f"gpu{index}"
        self.gpu_name = gpus.get_name(index)
        vendor = "amdsmi" if "amd" in type(gpus).__name__.lower() else "nvml"
        self.label = f"measured:{vendor}"
        self._clock = clock
        self.tracker = CounterTracker(max_range_j=None)
        self.read()

    def read(self) -> float:
        millijoules = self._gpus.get_total_energy_consumption(self.index)
        return self.tracker.update(millijoules / 1000.0, self._clock())

    def describe(self) -> EnergySourceInfo:
        updates = self.tracker.update_note()
        return EnergySourceInfo(
            domain=self.domain,
            label=self.label,
            method=(
                f"measured: {self.gpu_name} total-energy counter via Zeus ({self.label}){updates}"
            ),
            scope=f"the whole GPU {self.index} (every process on it)",
            resolution_j=1e-3,
        )


def zeus_gpu_sources() -> list[ZeusGpuSource]:
    """A source per GPU with a total-energy counter; empty without Zeus, a driver or a GPU."""
    try:
        from zeus.device import get_gpus
    except ImportError:
        return []
    try:
        gpus = get_gpus()
    except Exception:  # Zeus raises its own init errors when no driver or GPU is present
        return []
    return [
        ZeusGpuSource(gpus, i)
        for i in range(len(gpus))
        if gpus.supports_get_total_energy_consumption(i)
    ]


# Components of a system-on-chip measurement that do not overlap, so their sum is the total.
_SOC_FIELDS: dict[str, tuple[str, ...]] = {
    "apple": ("cpu_total_mj", "gpu_mj", "dram_mj", "ane_mj"),
    "jetson": ("total_energy_mj",),  # cpu and gpu rails are inside the total rail
}


class ZeusSocSource(EnergySource):
    """One component (CPU, GPU, DRAM, ANE, or a Jetson's total rail) of a SoC through Zeus."""

    def __init__(
        self, soc: Any, field: str, kind: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._soc = soc
        self.field = field
        self.domain = (
            "soc" if field == "total_energy_mj" else field.removesuffix("_mj").split("_")[0]
        )
        self.label = "measured:apple-silicon" if kind == "apple" else "measured:jetson"
        self._clock = clock
        self.tracker = CounterTracker(max_range_j=None)
        self.read()

    def read(self) -> float:
        millijoules = getattr(self._soc.get_total_energy_consumption(), self.field) or 0
        return self.tracker.update(millijoules / 1000.0, self._clock())

    def describe(self) -> EnergySourceInfo:
        return EnergySourceInfo(
            domain=self.domain,
            label=self.label,
            method=f"measured: {self.field} of the SoC energy counters via Zeus ({self.label})",
            scope="the whole SoC component (every process on it)",
            resolution_j=1e-3,
        )


def zeus_soc_sources() -> list[ZeusSocSource]:
    """Apple Silicon or Jetson energy components; empty without Zeus or such a chip."""
    try:
        from zeus.device.soc import get_soc
    except ImportError:
        return []
    try:
        soc = get_soc()
        sample = soc.get_total_energy_consumption()
    except Exception:  # Zeus raises its own init errors where there is no supported SoC
        return []
    kind = "apple" if "apple" in type(soc).__name__.lower() else "jetson"
    return [
        ZeusSocSource(soc, f, kind)
        for f in _SOC_FIELDS[kind]
        if getattr(sample, f, None) is not None
    ]


# -- what this machine offers (perwatt doctor) -----------------------------------------------


def _zeus_missing() -> bool:
    return importlib.util.find_spec("zeus") is None


def _readable_only_with_zeus(status: SourceStatus) -> SourceStatus:
    """A device perwatt found but cannot read without Zeus is not available; say how to fix it."""
    if not status.available or not _zeus_missing():
        return status
    return SourceStatus(
        status.name, False,
        f"{status.detail}, but perwatt reads it through Zeus, which is not installed: "
        f"{GPU_EXTRA}", status.label,
    )  # fmt: skip


_NVML = "nvml (NVIDIA GPU energy counter)"


def _nvml() -> SourceStatus:
    label = "measured:nvml"
    try:
        import pynvml  # type: ignore[import-not-found]
    except Exception:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            try:
                count = int(pynvml.nvmlDeviceGetCount())
            finally:
                pynvml.nvmlShutdown()
        except Exception as exc:
            return SourceStatus(_NVML, False, f"pynvml present but NVML failed: {exc}", label)
        return _nvml_count(count, label)
    lib = ctypes.util.find_library("nvidia-ml")
    if lib is None:
        detail = "libnvidia-ml not found: no NVIDIA driver on this machine"
        return SourceStatus(_NVML, False, detail, label)
    try:
        nvml = ctypes.CDLL(lib)
        if nvml.nvmlInit_v2() != 0:
            return SourceStatus(_NVML, False, "nvmlInit failed (driver not loaded?)", label)
        count = ctypes.c_uint(0)
        status = nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
        nvml.nvmlShutdown()
    except (OSError, AttributeError) as exc:
        return SourceStatus(_NVML, False, f"cannot use {lib}: {exc}", label)
    if status != 0:
        return SourceStatus(_NVML, False, f"nvmlDeviceGetCount failed (status {status})", label)
    return _nvml_count(count.value, label)


def _nvml_count(count: int, label: str) -> SourceStatus:
    if count == 0:
        return SourceStatus(_NVML, False, "NVML loads but sees no GPU", label)
    return SourceStatus(
        _NVML, True, f"{count} GPU(s); total-energy counter needs Volta or newer", label
    )


_AMD = "amdsmi (AMD GPU energy)"


def _amd() -> SourceStatus:
    label = "measured:amdsmi"
    try:
        import amdsmi  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or OSError when the ROCm library is missing
        detail = "amdsmi not installed (no ROCm)" if isinstance(exc, ImportError) else str(exc)
        return SourceStatus(_AMD, False, detail, label)
    try:
        amdsmi.amdsmi_init()
        try:
            count = len(amdsmi.amdsmi_get_processor_handles())
        finally:
            amdsmi.amdsmi_shut_down()
    except Exception as exc:
        return SourceStatus(_AMD, False, f"amdsmi present but failed: {exc}", label)
    if count == 0:
        return SourceStatus(_AMD, False, "amdsmi loads but sees no AMD GPU", label)
    return SourceStatus(_AMD, True, f"{count} AMD GPU(s)", label)


_APPLE = "apple silicon (powermetrics)"


def _apple() -> SourceStatus:
    label = "measured:apple"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return SourceStatus(_APPLE, True, "Apple Silicon detected", label)
    return SourceStatus(
        _APPLE, False, f"not an Apple Silicon Mac ({platform.system()} {platform.machine()})", label
    )


_JETSON = "jetson (INA3221 rails)"


def _jetson() -> SourceStatus:
    label = "measured:jetson"
    if os.path.exists("/etc/nv_tegra_release") or os.path.isdir("/sys/bus/i2c/drivers/ina3221x"):
        return SourceStatus(_JETSON, True, "NVIDIA Jetson detected", label)
    return SourceStatus(
        _JETSON,
        False,
        "not an NVIDIA Jetson (no /etc/nv_tegra_release, no /sys/bus/i2c/drivers/ina3221x)",
        label,
    )


def _probe_gpus() -> list[SourceStatus]:
    return [_readable_only_with_zeus(_nvml()), _readable_only_with_zeus(_amd())]


def _probe_soc() -> list[SourceStatus]:
    return [_readable_only_with_zeus(_apple()), _readable_only_with_zeus(_jetson())]


def _open_gpus(request: SourceRequest) -> list[EnergySource]:
    return list(zeus_gpu_sources())


def _open_soc(request: SourceRequest) -> list[EnergySource]:
    return list(zeus_soc_sources())


PROVIDERS = (
    Provider("gpu (NVML / amdsmi via Zeus)", "counter", _probe_gpus, _open_gpus, order=1),
    # A system-on-chip's counters already cover its CPU, GPU and memory: used alone.
    Provider("soc (Apple Silicon / Jetson via Zeus)", "counter", _probe_soc, _open_soc, order=0,
             exclusive=True),
)  # fmt: skip
