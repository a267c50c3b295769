"""Run directories (DESIGN.md, "A run directory"): the contract every later stage reads.

`RunWriter` writes one (append-and-checkpoint, one writer at a time, finalized atomically);
`read_run` reads one back with its typed `Manifest`; `find_runs` finds them under the paths a
user gives. Nothing else in perwatt opens a run directory's files.
"""

from perwatt.files import atomic_write, to_jsonable, write_json, write_table
from perwatt.store._files import (
    CHECKPOINT_DIR,
    ITEMS_FILE,
    MANIFEST_FILE,
    POWER_FILE,
    REQUESTS_FILE,
    SCORES_FILE,
    SERVER_LOG_FILE,
    SUMMARY_FILE,
)
from perwatt.store._manifest import (
    MANIFEST_VERSION,
    AttributionInfo,
    EnergyInfo,
    EnergyTotals,
    IdleInfo,
    LoadInfo,
    Manifest,
    ModelInfo,
    ScoringEntry,
    Segment,
    ServerInfo,
    SloInfo,
)
from perwatt.store._reader import (
    FoundRuns,
    RunData,
    RunState,
    file_digest,
    find_runs,
    read_manifest,
    read_run,
    read_scores,
    run_state,
)
from perwatt.store._schema import (
    ITEM_SCHEMA,
    POWER_SCHEMA,
    REQUEST_SCHEMA,
    SCORE_SCHEMA,
    check_requests,
    items_table,
    power_table,
    records_table,
    scores_table,
)
from perwatt.store._writer import RunWriter, write_rescored

__all__ = [
    "CHECKPOINT_DIR",
    "ITEMS_FILE",
    "ITEM_SCHEMA",
    "MANIFEST_FILE",
    "MANIFEST_VERSION",
    "POWER_FILE",
    "POWER_SCHEMA",
    "REQUESTS_FILE",
    "REQUEST_SCHEMA",
    "SCORES_FILE",
    "SCORE_SCHEMA",
    "SERVER_LOG_FILE",
    "SUMMARY_FILE",
    "AttributionInfo",
    "EnergyInfo",
    "EnergyTotals",
    "FoundRuns",
    "IdleInfo",
    "LoadInfo",
    "Manifest",
    "ModelInfo",
    "RunData",
    "RunState",
    "RunWriter",
    "ScoringEntry",
    "Segment",
    "ServerInfo",
    "SloInfo",
    "atomic_write",
    "check_requests",
    "file_digest",
    "find_runs",
    "items_table",
    "power_table",
    "read_manifest",
    "read_run",
    "read_scores",
    "records_table",
    "run_state",
    "scores_table",
    "to_jsonable",
    "write_json",
    "write_rescored",
    "write_table",
]
