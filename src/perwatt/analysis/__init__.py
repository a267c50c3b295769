"""Analysis: the one metrics kernel (`metrics`) and what is built on it — per-run summaries,
comparison, coverage and routing, trends, fleet projection and the DuckDB catalogue."""

from perwatt.analysis.metrics import DomainSummary, Estimate, RunContext, RunSummary, summarize
from perwatt.analysis.summaries import compute_summaries, summaries_of

__all__ = [
    "DomainSummary",
    "Estimate",
    "RunContext",
    "RunSummary",
    "compute_summaries",
    "summaries_of",
    "summarize",
]
