"""The live Prometheus exporter: what a running perwatt command has measured so far, on
`/metrics` for the life of the command (`--metrics-port`).

It computes no figure. On each scrape, and only then, it reads the places the run itself keeps
them — the energy sampler's per-domain totals (`EnergySampler.domains`), the runner's request
counts, the idle baseline by `energy.measure_idle` over the run's own idle window — so an
unscraped exporter costs nothing, and the last scrape of a run equals its final figures. Ratios
(correct per kJ, J per token) are PromQL over these counters: docs/metrics.md, "Live".

Every energy series carries `energy="measured"|"estimated"` and the source's full label.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import perwatt
from perwatt.energy.idle import IdleBaseline, measure_idle
from perwatt.energy.sampler import EnergySampler
from perwatt.errors import PerwattError

DEFAULT_HOST = "127.0.0.1"
# After a run's figures are final, the exporter waits for one more scrape (so that Prometheus
# holds the run's totals, not those of a second before its end): at most this many scrape
# intervals, as seen so far, and never longer than LINGER_MAX_S.
LINGER_INTERVALS = 1.5
LINGER_MAX_S = 10.0
# The base labels of every series: which run it is.
RUN_LABELS = ("run_id", "model", "workload", "load")
ENERGY_LABELS = (*RUN_LABELS, "domain", "source", "energy")


class Counts(Protocol):
    """The runner's running request counts (`runner._Live`), read as they are."""

    done: int
    correct: int
    statuses: Mapping[str, int]
    prompt_tokens: int
    completion_tokens: int
    in_flight: int
    send_lag_s: float | None


@dataclass
class LiveRun:
    """One run (or `perwatt meter` command) as the exporter shows it.

    `counts` is attached when the workload starts (before it, every request count is 0);
    `idle_window` gives the idle baseline's (start, end) once it was measured.
    """

    run_id: str
    model: str = ""
    workload: str = ""
    load: str = ""
    endpoint: str = ""  # already redacted by the caller: never a key or a password
    sampler: EnergySampler | None = None
    counts: Counts | None = None
    idle_window: Callable[[], tuple[float, float] | None] = lambda: None
    final_at: float | None = None  # monotonic time from which its figures no longer change
    requests: bool = True  # False for `perwatt meter`: energy only, no request series
    _idle: tuple[tuple[float, float], IdleBaseline] | None = field(default=None, repr=False)

    def end(self) -> None:
        """Its figures are final (the sampler stopped): the exporter lets one scrape see them."""
        self.final_at = time.monotonic()

    def idle(self) -> IdleBaseline | None:
        """The idle baseline, as the run measures it, once its window has passed (computed once)."""
        window = self.idle_window()
        if window is None or self.sampler is None:
            return None
        if self._idle is None or self._idle[0] != window:
            self._idle = (window, measure_idle(self.sampler.timeline(), *window))
        return self._idle[1]


def families(run: LiveRun) -> list[Metric]:
    """The metric families of one run, from its live state as it is now."""
    base = [run.run_id, run.model, run.workload, run.load]
    out: list[Metric] = []
    readings = run.sampler.domains() if run.sampler is not None else []
    info = InfoMetricFamily("perwatt_run", "The run being measured", labels=RUN_LABELS)
    info.add_metric(base, {"endpoint": run.endpoint, "version": perwatt.__version__})
    out.append(info)

    energy = CounterMetricFamily(
        "perwatt_energy_joules",
        "Energy sampled since the run's sampler started (warm-up and idle baseline included), "
        "per domain and source",
        labels=ENERGY_LABELS,
    )
    power = GaugeMetricFamily(
        "perwatt_power_watts", "Power over about the last second, per domain", labels=ENERGY_LABELS
    )
    idle_power = GaugeMetricFamily(
        "perwatt_idle_power_watts",
        "The run's idle baseline (model loaded, nothing sent), per domain, once measured",
        labels=ENERGY_LABELS,
    )
    idle = run.idle()
    for reading in readings:
        kind = reading.label.partition(":")[0]  # measured | estimated
        labels = [*base, reading.domain, reading.label, kind]
        energy.add_metric(labels, reading.energy_j)
        if reading.power_w is not None:
            power.add_metric(labels, reading.power_w)
        if idle is not None and reading.domain in idle.power_w:
            idle_power.add_metric(labels, idle.power_w[reading.domain])
    out += [energy, power, idle_power]
    if not run.requests:
        return out

    counts = run.counts
    requests = CounterMetricFamily(
        "perwatt_requests", "Completed requests, by status", labels=(*RUN_LABELS, "status")
    )
    # A copy first: the event loop adds a status while a scrape may be reading them.
    for status, n in sorted(dict(counts.statuses if counts else {}).items()):
        requests.add_metric([*base, status], n)
    out.append(requests)
    for name, doc, value in (
        ("perwatt_correct", "Correct answers", counts.correct if counts else 0),
        ("perwatt_prompt_tokens", "Prompt tokens of completed requests",
         counts.prompt_tokens if counts else 0),
        ("perwatt_completion_tokens", "Completion tokens of completed requests",
         counts.completion_tokens if counts else 0),
    ):  # fmt: skip
        counter = CounterMetricFamily(name, doc, labels=RUN_LABELS)
        counter.add_metric(base, value)
        out.append(counter)
    in_flight = GaugeMetricFamily(
        "perwatt_requests_in_flight", "Requests sent and not yet answered", labels=RUN_LABELS
    )
    in_flight.add_metric(base, counts.in_flight if counts else 0)
    out.append(in_flight)
    if counts is not None and counts.send_lag_s is not None:
        lag = GaugeMetricFamily(
            "perwatt_send_lag_seconds",
            "How late the latest answered request was sent after its scheduled time",
            labels=RUN_LABELS,
        )
        lag.add_metric(base, counts.send_lag_s)
        out.append(lag)
    return out


class _Collector(Collector):
    def __init__(self, exporter: LiveExporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        return self._exporter.collect()


class LiveExporter:
    """`/metrics` on `host:port` in a daemon thread, showing one run at a time."""

    def __init__(self, host: str, port: int) -> None:
        if not 1 <= port <= 65535:  # as RunSpec says it, for the verbs without one
            raise PerwattError(f"--metrics-port must be between 1 and 65535, got {port}")
        self.host, self.port = host, port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self._run: LiveRun | None = None
        self._scrapes: list[float] = []  # monotonic times of the last scrapes
        self._scraped = threading.Condition()
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise PerwattError(
                f"--metrics-port {port}: cannot serve metrics on {host}:{port}: {reason}"
            ) from None

    def collect(self) -> list[Metric]:
        run = self._run
        found = families(run) if run is not None else []
        with self._scraped:
            self._scrapes = [*self._scrapes[-1:], time.monotonic()]
            self._scraped.notify_all()
        return found

    def show(self, run: LiveRun) -> None:
        """Show `run` from now on; the previous run's final figures get their scrape first."""
        self._linger()
        self._run = run

    def close(self, *, linger: bool = True) -> None:
        """Stop serving (after the last run's final scrape, unless `linger` is False)."""
        if linger:
            self._linger()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _linger(self) -> None:
        """Wait until a scrape has seen the current run's final figures, when anyone scrapes."""
        run = self._run
        if run is None or run.final_at is None:
            return
        with self._scraped:
            if not self._scrapes or self._scrapes[-1] > run.final_at:
                return  # nobody scrapes, or a scrape already saw the final figures
            gap = self._scrapes[-1] - self._scrapes[0] if len(self._scrapes) > 1 else 1.0
            deadline = run.final_at + min(LINGER_MAX_S, LINGER_INTERVALS * gap + 0.5)
            while self._scrapes[-1] <= run.final_at and (left := deadline - time.monotonic()) > 0:
                self._scraped.wait(left)


@contextlib.contextmanager
def serving(host: str, port: int | None) -> Iterator[LiveExporter | None]:
    """The exporter for the life of a command; None (and no port opened) without a port.

    A busy port is a PerwattError at once, before anything is measured. Leaving the block by an
    exception (Ctrl-C) stops serving at once; a normal end waits for the final scrape first.
    """
    if port is None:
        yield None
        return
    exporter = LiveExporter(host, port)
    try:
        yield exporter
    except BaseException:
        exporter.close(linger=False)
        raise
    exporter.close()
