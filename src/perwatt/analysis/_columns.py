"""Request rows as numpy columns, and the one per-item matrix every figure is built on.

**The rule for an item asked more than once.** A figure's unit is the item: an item that a run
asked k times counts once, with the mean of its k attempts — its share of correct attempts, its
mean energy, its mean latency. So an item never weighs more because it was asked more often,
and a run, a comparison of two runs and a routing study give the same accuracy for the same
rows. (With every item asked once, as in an ordinary run, this is exactly DESIGN.md's
per-request definitions.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perwatt.records import STATUSES

STATUS_OK = STATUSES.index("ok")
STATUS_TRUNCATED = STATUSES.index("truncated")
STATUS_ERROR = STATUSES.index("error")
STATUS_TIMEOUT = STATUSES.index("timeout")

_NEEDED = (
    "item_id", "domain", "status", "correct", "energy_j", "energy_net_j", "t_sent",
    "t_first_token", "t_done", "t_scheduled", "prompt_tokens", "completion_tokens",
)  # fmt: skip


@dataclass(frozen=True)
class RequestColumns:
    """The request rows of one or more runs as numpy columns.

    `group[i]` indexes `groups` (one per run) and `item[i]` indexes `items` (shared across runs,
    so the same item in two runs has the same index). Missing numbers are NaN. `correct` is the
    row's verdict as recorded (null counts as not correct). `itl_values`/`itl_offsets` hold each
    row's inter-token gaps (row i owns values offsets[i]:offsets[i+1]).
    """

    groups: list[str]
    items: list[str]
    domains: list[str]
    group: np.ndarray  # int32
    item: np.ndarray  # int64
    domain: np.ndarray  # int32
    status: np.ndarray  # int8 code into records.STATUSES
    correct: np.ndarray  # bool
    energy_j: np.ndarray
    energy_net_j: np.ndarray
    t_scheduled: np.ndarray
    t_sent: np.ndarray
    t_first_token: np.ndarray
    t_done: np.ndarray
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    itl_values: np.ndarray | None = None
    itl_offsets: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.group.size)

    @classmethod
    def from_tables(cls, tables: Sequence[pa.Table], groups: Sequence[str]) -> RequestColumns:
        """Columns from (checked) requests tables, one per run, group names in the same order."""
        if len(tables) != len(groups):
            raise ValueError("one group name per table")
        table = pa.concat_tables([_subset(t) for t in tables], promote_options="permissive")
        sizes = np.array([t.num_rows for t in tables], dtype=np.int64)
        group = np.repeat(np.arange(len(tables), dtype=np.int32), sizes)
        items, item = _codes(table.column("item_id"))
        domains, domain = _codes(table.column("domain"))
        status_names, status_code = _codes(table.column("status"))
        remap = np.array([STATUSES.index(s) for s in status_names], dtype=np.int8)  # type: ignore[arg-type]
        status = remap[status_code] if status_names else np.zeros(0, np.int8)
        itl_values = itl_offsets = None
        if "itl_s" in table.column_names:
            itl = table.column("itl_s").combine_chunks()
            if itl.null_count < len(itl):
                itl_offsets = np.asarray(itl.offsets, dtype=np.int64)
                itl_values = np.asarray(itl.values.to_numpy(zero_copy_only=False), dtype=float)
        return cls(
            groups=list(groups),
            items=items,
            domains=domains,
            group=group,
            item=item.astype(np.int64),
            domain=domain,
            status=status,
            correct=_num(table, "correct", fill=0.0).astype(bool),
            energy_j=_num(table, "energy_j"),
            energy_net_j=_num(table, "energy_net_j"),
            t_scheduled=_num(table, "t_scheduled"),
            t_sent=_num(table, "t_sent"),
            t_first_token=_num(table, "t_first_token"),
            t_done=_num(table, "t_done"),
            prompt_tokens=_num(table, "prompt_tokens"),
            completion_tokens=_num(table, "completion_tokens"),
            itl_values=itl_values,
            itl_offsets=itl_offsets,
        )


def nz(x: np.ndarray) -> np.ndarray:
    """x with NaN as 0 (a copy only when there is a NaN)."""
    missing = np.isnan(x)
    return np.where(missing, 0.0, x) if missing.any() else x


def _subset(table: pa.Table) -> pa.Table:
    names = [c for c in (*_NEEDED, "itl_s") if c in table.column_names]
    missing = set(_NEEDED) - set(names)
    if missing:
        raise ValueError(f"requests table lacks column {sorted(missing)[0]!r}")
    return table.select(names)


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct values, sorted, and each row's index into them. Sorted, so that the same items
    get the same indices (hence the same bootstrap weights) in whatever order rows arrived."""
    encoded = pc.dictionary_encode(column.combine_chunks().cast(pa.string()).fill_null(""))
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    order = np.argsort(np.array(names, dtype=object), kind="stable")
    rank = np.empty(len(names), dtype=np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return [names[i] for i in order], rank[indices] if len(names) else indices.astype(np.int32)


def _num(table: pa.Table, name: str, fill: float = math.nan) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    return np.asarray(col.cast(pa.float64()).fill_null(fill).to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class ItemMatrix:
    """Per item and run (n_items × runs): how often it was asked, and the mean of its attempts.

    `correct` is the share of attempts that were correct, `energy_j` etc. the mean per attempt;
    all are 0 where a run did not ask an item (`count` 0). See the module docstring for why.
    """

    count: np.ndarray
    correct: np.ndarray
    energy_j: np.ndarray
    energy_net_j: np.ndarray
    e2e_s: np.ndarray
    power_w: np.ndarray  # mean of E_i / L_i over the item's attempts (the harness's average)
    prompt_tokens: np.ndarray  # mean per attempt (missing counts as 0; see prompt_missing)
    completion_tokens: np.ndarray
    prompt_missing: np.ndarray  # attempts without a prompt-token count

    @property
    def answered(self) -> np.ndarray:
        """Whether each run asked each item at least once."""
        return self.count > 0


def item_matrix(cols: RequestColumns) -> ItemMatrix:
    """Aggregate rows per (item, run) with one bincount per column, then take the means."""
    g = len(cols.groups)
    n = len(cols.items)
    key = cols.item * g + cols.group
    size = n * g

    def total(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(key, weights=weights, minlength=size).reshape(n, g)

    count = total(None).astype(np.float64)
    safe = np.maximum(count, 1.0)
    e2e = cols.t_done - cols.t_sent
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.where(e2e > 0, nz(cols.energy_j) / e2e, 0.0)
    return ItemMatrix(
        count=count,
        correct=total(cols.correct.astype(np.float64)) / safe,
        energy_j=total(nz(cols.energy_j)) / safe,
        energy_net_j=total(nz(cols.energy_net_j)) / safe,
        e2e_s=total(nz(e2e)) / safe,
        power_w=total(power) / safe,
        prompt_tokens=total(nz(cols.prompt_tokens)) / safe,
        completion_tokens=total(nz(cols.completion_tokens)) / safe,
        prompt_missing=total(np.isnan(cols.prompt_tokens).astype(np.float64)),
    )
