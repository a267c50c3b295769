"""The files a run directory holds (docs/run-directory.md)."""

REQUESTS_FILE = "requests.parquet"
POWER_FILE = "power.parquet"
ITEMS_FILE = "items.parquet"
SCORES_FILE = "scores.parquet"
# One row per task of a multi-turn run (--task retry|tools); absent from single-turn runs.
TASKS_FILE = "tasks.parquet"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
SERVER_LOG_FILE = "server.log"
# The endpoint's own counters over time (its Prometheus /metrics), where it exposes them.
SERVER_METRICS_FILE = "server_metrics.parquet"
CHECKPOINT_DIR = ".partial"
# The settings a run was started with, kept in the checkpoint so a resume uses the same ones.
SPEC_FILE = "spec.json"
