"""Energy from an exporter the user already runs, scraped over Prometheus's text format.

Typical metrics: DCGM exporter's `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` (mJ counter per GPU),
Kepler's `kepler_node_package_joules_total` (J counter), node exporter's RAPL
`node_rapl_package_joules_total` (J counter), or any power gauge in watts (integrated here).
A counter goes through `CounterTracker`, so a reset of the exporter is flagged, never absorbed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from perwatt.energy.counters import CounterTracker
from perwatt.energy.sources import (
    EnergySource,
    EnergySourceInfo,
    Provider,
    SourceRequest,
    SourceStatus,
)
from perwatt.errors import PerwattError
from perwatt.redact import redact_url

UNITS = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "kWh": 3.6e6, "W": None}
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class PrometheusMetric:
    """What to scrape: `URL;METRIC{label="value",...};UNIT` on the command line."""

    url: str
    metric: str
    labels: dict[str, str] = field(default_factory=dict)
    unit: str = "J"

    @classmethod
    def parse(cls, text: str) -> PrometheusMetric:
        """`http://host:9400/metrics;DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"};mJ`."""
        parts = text.split(";")
        if len(parts) not in (2, 3) or not parts[0].startswith(("http://", "https://")):
            raise PerwattError(
                f"--prometheus takes URL;METRIC[{{labels}}][;UNIT], not {text!r} "
                f"(units: {', '.join(UNITS)})"
            )
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?", parts[1].strip())
        if match is None:
            raise PerwattError(f"--prometheus: {parts[1]!r} is not a metric name")
        unit = parts[2].strip() if len(parts) == 3 else "J"
        if unit not in UNITS:
            raise PerwattError(
                f"--prometheus: unknown unit {unit!r}; use one of {', '.join(UNITS)}"
            )
        labels = dict(_LABEL.findall(match.group(2) or ""))
        return cls(parts[0].strip(), match.group(1), labels, unit)


def parse_samples(text: str, metric: PrometheusMetric) -> list[float]:
    """Values of the series of `metric` whose labels include the wanted ones (the text parsed by
    prometheus_client, as the server-metrics scraper does; malformed text is a ValueError)."""
    values = []
    for family in text_string_to_metric_families(text):
        names = {metric.metric}
        if family.type == "counter" and family.name == metric.metric:
            # The parser names a counter's samples `<name>_total` even when the text did not.
            names.add(metric.metric + "_total")
        for sample in family.samples:
            if sample.name in names and all(
                sample.labels.get(k) == v for k, v in metric.labels.items()
            ):
                values.append(float(sample.value))
    return values


class PrometheusSource(EnergySource):
    """Cumulative energy from a scraped counter (summed over matching series) or power gauge."""

    def __init__(
        self,
        metric: PrometheusMetric,
        *,
        domain: str | None = None,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metric = metric
        self.domain = domain or metric.metric
        self.label = f"measured:prometheus:{metric.metric}"
        self._http = httpx.Client(timeout=timeout_s)
        self._clock = clock
        self.tracker = CounterTracker(max_range_j=None)
        self._gauge_j = 0.0
        self._last: tuple[float, float] | None = None  # (t, W) of the last gauge reading
        self.read()

    def _scrape(self) -> float:
        try:
            response = self._http.get(self.metric.url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise PerwattError(
                f"cannot scrape {redact_url(self.metric.url)}: {type(exc).__name__}"
            ) from None
        try:
            values = parse_samples(response.text, self.metric)
        except ValueError as exc:
            raise PerwattError(
                f"{redact_url(self.metric.url)} is not a Prometheus text exposition ({exc})"
            ) from None
        if not values:
            raise PerwattError(
                f"{redact_url(self.metric.url)} has no series {self.metric.metric}"
                f"{self.metric.labels or ''}"
            )
        return sum(values)

    def read(self) -> float:
        value, t = self._scrape(), self._clock()
        scale = UNITS[self.metric.unit]
        if scale is not None:
            return self.tracker.update(value * scale, t)
        # A power gauge: integrate with the trapezoid rule between scrapes.
        if self._last is not None:
            t0, w0 = self._last
            self._gauge_j += (w0 + value) / 2 * (t - t0)
        self._last = (t, value)
        return self._gauge_j

    def close(self) -> None:
        self._http.close()

    def describe(self) -> EnergySourceInfo:
        kind = "power gauge integrated over time" if self.metric.unit == "W" else "energy counter"
        return EnergySourceInfo(
            domain=self.domain,
            label=self.label,
            method=(
                f"measured by the user's exporter: {self.metric.metric}{self.metric.labels or ''} "
                f"({kind}, {self.metric.unit}) scraped from {redact_url(self.metric.url)}"
            ),
            scope="whatever the exporter's series covers",
        )


def _probe() -> list[SourceStatus]:
    return [SourceStatus("prometheus (your exporter)", True,
                         "scraped when you give --prometheus URL;METRIC{labels};UNIT (DCGM "
                         "exporter, Kepler, node exporter)", "measured:prometheus")]  # fmt: skip


def _open(request: SourceRequest) -> list[EnergySource]:
    return [PrometheusSource(PrometheusMetric.parse(p), domain=f"prom{i}")
            for i, p in enumerate(request.prometheus)]  # fmt: skip


PROVIDERS = (Provider("prometheus (your exporter)", "exporter", _probe, _open),)
