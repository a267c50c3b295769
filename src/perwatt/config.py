"""RunSpec: the validated settings of one `perwatt run`, whatever model or endpoint it measures."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from perwatt.endpoints.catalogue import DEFAULT_MODELS

# Managed server slots for an open-loop run without --max-in-flight (its in-flight count is
# unbounded; requests beyond the slots queue in the server, which the latencies then show).
DEFAULT_OPEN_LOOP_SLOTS = 8


class RunSpec(BaseModel):
    """Everything that decides what a run measures. Written, redacted, into the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[str, ...] = DEFAULT_MODELS
    endpoint: str | None = Field(
        default=None, description="OpenAI-compatible base URL of a server the user already runs"
    )
    server_pid: int | None = Field(
        default=None, description="pid of the external server, so energy covers only its process"
    )
    api: str = Field(default="chat", description="chat or completions, for --endpoint runs")
    workload: str = "reasoning-gym"
    data_file: Path | None = Field(
        default=None, description="local copy of a hub dataset, or a user file (JSONL/CSV/...)"
    )
    limit: int = 50
    seed: int = 0
    out: Path | None = None
    runs_dir: Path = Path("runs")
    resume: bool = False
    concurrency: int = 1
    rate: float | None = Field(
        default=None, description="open-loop mean request rate (1/s) instead of fixed concurrency"
    )
    burstiness: float = Field(default=1.0, description="gamma shape of inter-arrivals; 1 = Poisson")
    max_in_flight: int | None = None
    duration_s: float | None = Field(default=None, description="stop sending after this long")
    slo_ttft_s: float | None = None
    slo_e2e_s: float | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    request_timeout_s: float = 300.0
    warmup_requests: int = 1
    idle_seconds: float = 10.0
    sample_interval_s: float = 0.05
    energy: str = Field(
        default="auto", description="auto: hardware counters when present, else the estimate"
    )
    attribution: str = Field(default="equal", description="equal or tokens (token-weighted)")
    prometheus: tuple[str, ...] = Field(
        default=(), description="exporters to scrape instead: URL;METRIC{labels};UNIT"
    )
    cpu_watts_per_core: float | None = None
    cpu_idle_watts: float | None = None
    port: int | None = None
    n_threads: int = 0
    n_ctx: int = 2048
    n_batch: int = 512
    parallel: int | None = Field(
        default=None,
        description="managed server slots (continuous batching); None: enough for the load",
    )
    bootstrap_resamples: int = 1000

    @field_validator("limit")
    @classmethod
    def _positive_limit(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"--limit must be a positive number of items, got {value}")
        return value

    @field_validator("concurrency", "max_tokens", "bootstrap_resamples")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator(
        "rate", "burstiness", "duration_s", "slo_ttft_s", "slo_e2e_s", "max_in_flight", "parallel"
    )
    @classmethod
    def _positive_if_given(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator("idle_seconds", "warmup_requests")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value

    @field_validator("sample_interval_s", "request_timeout_s")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator("attribution")
    @classmethod
    def _known_attribution(cls, value: str) -> str:
        if value not in ("equal", "tokens"):
            raise ValueError(f"--attribution must be equal or tokens, got {value!r}")
        return value

    @field_validator("energy")
    @classmethod
    def _known_energy(cls, value: str) -> str:
        if value not in ("auto", "estimate"):
            raise ValueError(f"--energy must be auto or estimate, got {value!r}")
        return value

    @field_validator("api")
    @classmethod
    def _known_api(cls, value: str) -> str:
        if value not in ("chat", "completions"):
            raise ValueError(f"--api must be chat or completions, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        if not self.models:
            raise ValueError("at least one model is needed")
        if self.endpoint is not None and len(self.models) != 1:
            raise ValueError("--endpoint measures one model: pass exactly one --model NAME")
        if self.endpoint is None and self.server_pid is not None:
            raise ValueError("--server-pid only applies to --endpoint runs")
        if self.endpoint is not None and self.port is not None:
            raise ValueError(
                "--port sets the managed server's port; it does not apply to --endpoint"
            )
        if self.port is not None and len(self.models) > 1:
            raise ValueError("--port applies to one managed model at a time")
        if self.resume and self.out is None:
            raise ValueError("--resume needs --out RUN_DIR naming the run to continue")
        return self

    def server_slots(self) -> int:
        """Slots of the managed server: --parallel, else enough for this run's load."""
        if self.parallel is not None:
            return self.parallel
        if self.rate is None:
            return self.concurrency
        return self.max_in_flight or DEFAULT_OPEN_LOOP_SLOTS

    def load_label(self) -> str:
        """How the load was generated, in words (shown in every table)."""
        if self.rate is None:
            return f"concurrency {self.concurrency}"
        kind = "poisson" if self.burstiness == 1.0 else f"gamma(shape {self.burstiness:g})"
        cap = f", ≤{self.max_in_flight} in flight" if self.max_in_flight else ""
        return f"{kind} {self.rate:g}/s{cap}"

    def load_tag(self) -> str:
        """A short name for this load level, used for run directories of a sweep."""
        return f"c{self.concurrency}" if self.rate is None else f"r{self.rate:g}"

    def run_dir_for(self, model: str, run_id: str) -> Path:
        """Where `model`'s run directory goes: --out itself for one model, else one per model."""
        if self.out is None:
            return self.runs_dir / run_id
        if len(self.models) == 1:
            return self.out
        return self.out / model
