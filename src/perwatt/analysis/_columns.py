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
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from perwatt.records import STATUSES

if TYPE_CHECKING:
    from perwatt.store import RunData

STATUS_OK = STATUSES.index("ok")
STATUS_TRUNCATED = STATUSES.index("truncated")
STATUS_ERROR = STATUSES.index("error")
STATUS_TIMEOUT = STATUSES.index("timeout")

_NEEDED = (
    "item_id", "domain", "status", "correct", "energy_j", "energy_net_j", "t_sent",
    "t_first_token", "t_done", "t_scheduled", "prompt_tokens", "completion_tokens",
)  # fmt: skip


# Read when present (runs written before a column existed lack it).
_OPTIONAL = ("itl_s", "prefill_energy_j", "attempt", "retried", "http_status")

# Every column the kernel reads: what to ask a run for (`RunData.request_columns`), so that an
# analysis reads a third of a requests file, not all of it.
KERNEL_COLUMNS = (*_NEEDED, *_OPTIONAL)


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
    # Energy from sent to first token (NaN: not split, e.g. a run written before the split);
    # decode energy is energy_j − prefill_energy_j (the attribution conserves it exactly).
    prefill_energy_j: np.ndarray | None = None
    # Per group: attempts that were retried (folded into the attempt after them, see
    # `_fold_retries`) and responses that were HTTP 429 (rate limited), retried or not.
    retried: np.ndarray | None = None
    rate_limited: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.group.size)

    @cached_property
    def item_domains(self) -> np.ndarray:
        """Each item's domain code (the domain of its first row)."""
        out = np.zeros(len(self.items), dtype=np.int32)
        out[self.item[::-1]] = self.domain[::-1]
        return out

    @classmethod
    def from_runs(cls, runs: Sequence[RunData]) -> RequestColumns:
        """Columns of runs (one group per run, named by its run id), reading from each only
        the columns the kernel uses."""
        return cls.from_tables(
            [r.request_columns(KERNEL_COLUMNS) for r in runs], [r.run_id for r in runs]
        )

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
        prefill = (
            _num(table, "prefill_energy_j")
            if "prefill_energy_j" in table.column_names
            else np.full(table.num_rows, math.nan)
        )
        if "itl_s" in table.column_names:
            itl = table.column("itl_s").combine_chunks()
            if itl.null_count < len(itl):
                itl_offsets = np.asarray(itl.offsets, dtype=np.int64)
                itl_values = np.asarray(itl.values.to_numpy(zero_copy_only=False), dtype=float)
        rate_limited = np.bincount(
            group[_num(table, "http_status") == 429] if "http_status" in table.column_names
            else np.zeros(0, np.int32), minlength=len(tables),
        )  # fmt: skip
        cols = cls(
            groups=list(groups),
            items=items,
            domains=domains,
            group=group,
            item=item.astype(np.int64),
            domain=domain,
            status=status,
            correct=_flag(table, "correct"),
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
            prefill_energy_j=prefill,
            rate_limited=rate_limited,
        )
        return _fold_retries(cols, table, len(tables))


def _fold_retries(cols: RequestColumns, table: pa.Table, n_groups: int) -> RequestColumns:
    """A retried attempt (--retries) is not an answer: its energy is added to the attempt that
    followed it (attempt k+1 of the same item in the same run) and its row leaves the columns,
    so an item's verdict and latency are its last attempt's, and its energy is what every
    attempt at it cost. Energy totals are unchanged."""
    none = np.zeros(n_groups, dtype=np.int64)
    if "retried" not in table.column_names or not pc.any(table.column("retried")).as_py():
        return replace(cols, retried=none)
    retried = _flag(table, "retried")
    attempt = _num(table, "attempt")
    rows = {(int(g), int(i), a): k for k, (g, i, a) in
            enumerate(zip(cols.group, cols.item, attempt.tolist(), strict=True))}  # fmt: skip
    energy, net = cols.energy_j.copy(), cols.energy_net_j.copy()
    prefill = None if cols.prefill_energy_j is None else cols.prefill_energy_j.copy()
    folded = np.zeros(cols.n_rows, dtype=bool)
    chain = np.flatnonzero(retried)
    # In attempt order, so that 1 → 2 → 3 carries attempt 1's energy on to attempt 3.
    for k in chain[np.argsort(attempt[chain], kind="stable")]:
        nxt = rows.get((int(cols.group[k]), int(cols.item[k]), attempt[k] + 1))
        if nxt is None:
            continue  # the next attempt never completed (a run killed mid-retry): keep the row
        energy[nxt] += nz(energy[k : k + 1])[0]
        net[nxt] += nz(net[k : k + 1])[0]
        if prefill is not None:
            prefill[nxt] += nz(prefill[k : k + 1])[0]
        folded[k] = True
    keep = ~folded
    itl_values, itl_offsets = cols.itl_values, cols.itl_offsets
    if itl_offsets is not None and itl_values is not None:
        lengths = np.diff(itl_offsets)
        itl_values = itl_values[np.repeat(keep, lengths)]
        itl_offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
    take = {
        name: getattr(cols, name)[keep]
        for name in ("group", "item", "domain", "status", "correct", "t_scheduled", "t_sent",
                     "t_first_token", "t_done", "prompt_tokens", "completion_tokens")
    }  # fmt: skip
    return replace(
        cols, **take, energy_j=energy[keep], energy_net_j=net[keep],
        prefill_energy_j=None if prefill is None else prefill[keep],
        itl_values=itl_values, itl_offsets=itl_offsets,
        retried=np.bincount(cols.group[folded], minlength=n_groups).astype(np.int64),
    )  # fmt: skip


def nz(x: np.ndarray) -> np.ndarray:
    """x with NaN as 0 (a copy only when there is a NaN)."""
    missing = np.isnan(x)
    return np.where(missing, 0.0, x) if missing.any() else x


def _subset(table: pa.Table) -> pa.Table:
    names = [c for c in KERNEL_COLUMNS if c in table.column_names]
    missing = set(_NEEDED) - set(names)
    if missing:
        raise ValueError(f"requests table lacks column {sorted(missing)[0]!r}")
    return table.select(names)


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct values, sorted, and each row's index into them. Sorted, so that the same items
    get the same indices (hence the same bootstrap weights) in whatever order rows arrived."""
    column = column.cast(pa.string())
    if column.null_count:
        column = column.fill_null("")
    chunks = pc.dictionary_encode(column).chunks
    # Encoding a chunked column keeps one table of values across its chunks, so each chunk
    # carries the same (final) dictionary; check, and combine the chunks first otherwise.
    if chunks and all(len(c.dictionary) == len(chunks[-1].dictionary) for c in chunks):
        dictionary = chunks[-1].dictionary
        indices = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    else:
        encoded = pc.dictionary_encode(column.combine_chunks())
        dictionary = encoded.dictionary
        indices = encoded.indices.to_numpy(zero_copy_only=False)
    # Arrow orders strings by their UTF-8 bytes, which is Python's order (by code point).
    order = np.asarray(pc.array_sort_indices(dictionary).to_numpy(), dtype=np.int64)
    names = [str(v) for v in dictionary.take(pa.array(order)).to_pylist()]
    rank = np.empty(len(names), dtype=np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    return names, rank[indices] if len(names) else indices.astype(np.int32)


def _num(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, null as NaN (a column without nulls is copied once)."""
    col = table.column(name)
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    return np.asarray(col.cast(pa.float64()).to_numpy(), dtype=np.float64)


def _flag(table: pa.Table, name: str) -> np.ndarray:
    """A boolean column as bool, null as False."""
    return np.asarray(pc.fill_null(table.column(name), False).to_numpy(), dtype=bool)


class ItemMatrix:
    """Per item and run (n_items × runs): how often it was asked, and the mean of its attempts.

    `correct` is the share of attempts that were correct, `energy_j` etc. the mean per attempt;
    all are 0 where a run did not ask an item (`count` 0). See the module docstring for why.

    Each matrix is one bincount over the rows, made the first time it is read (a routing study
    reads five of the twelve; at 10 M rows each is 80 MB and a tenth of a second).
    """

    def __init__(self, cols: RequestColumns) -> None:
        self._cols = cols
        self._shape = (len(cols.items), len(cols.groups))
        self._key = cols.item * self._shape[1] + cols.group

    def _total(self, weights: np.ndarray | None) -> np.ndarray:
        size = self._shape[0] * self._shape[1]
        return np.bincount(self._key, weights=weights, minlength=size).reshape(self._shape)

    def _mean(self, weights: np.ndarray) -> np.ndarray:
        total = self._total(weights)
        # Every item asked at most once: dividing by 1 would change nothing (it is exact).
        return total if self._once else total / self._safe

    @cached_property
    def count(self) -> np.ndarray:
        return self._total(None).astype(np.float64)

    @cached_property
    def _safe(self) -> np.ndarray:
        return np.maximum(self.count, 1.0)

    @cached_property
    def _once(self) -> bool:
        return not self.count.size or float(self.count.max()) <= 1.0

    @cached_property
    def answered(self) -> np.ndarray:
        """Whether each run asked each item at least once."""
        return self.count > 0

    @cached_property
    def correct(self) -> np.ndarray:
        return self._mean(self._cols.correct.astype(np.float64))

    @cached_property
    def energy_j(self) -> np.ndarray:
        return self._mean(nz(self._cols.energy_j))

    @cached_property
    def energy_net_j(self) -> np.ndarray:
        return self._mean(nz(self._cols.energy_net_j))

    @cached_property
    def _e2e(self) -> np.ndarray:
        return self._cols.t_done - self._cols.t_sent

    @cached_property
    def e2e_s(self) -> np.ndarray:
        return self._mean(nz(self._e2e))

    @cached_property
    def power_w(self) -> np.ndarray:
        """Mean of E_i / L_i over the item's attempts (the harness's average)."""
        e2e = self._e2e
        with np.errstate(divide="ignore", invalid="ignore"):
            power = np.where(e2e > 0, nz(self._cols.energy_j) / e2e, 0.0)
        return self._mean(power)

    @cached_property
    def prompt_tokens(self) -> np.ndarray:
        """Mean per attempt (missing counts as 0; see prompt_missing)."""
        return self._mean(nz(self._cols.prompt_tokens))

    @cached_property
    def completion_tokens(self) -> np.ndarray:
        return self._mean(nz(self._cols.completion_tokens))

    @cached_property
    def prompt_missing(self) -> np.ndarray:
        """Attempts without a prompt-token count."""
        return self._total(np.isnan(self._cols.prompt_tokens).astype(np.float64))

    # The request's two phases: energy and seconds from sent to first token (a request with no
    # first token is all prefill); decode is the rest (energy_j − prefill, e2e_s − prefill_s).
    def _prefill_j(self) -> np.ndarray:
        prefill_j = self._cols.prefill_energy_j
        return np.full(self._cols.n_rows, math.nan) if prefill_j is None else prefill_j

    @cached_property
    def prefill_energy_j(self) -> np.ndarray:
        return self._mean(nz(self._prefill_j()))

    @cached_property
    def prefill_s(self) -> np.ndarray:
        e2e = self._e2e
        ttft = self._cols.t_first_token - self._cols.t_sent
        prefill_s = np.clip(np.where(np.isnan(ttft), e2e, ttft), 0.0, np.maximum(e2e, 0.0))
        return self._mean(nz(prefill_s))

    @cached_property
    def prefill_missing(self) -> np.ndarray:
        """Attempts whose energy was not split into phases."""
        return self._total(np.isnan(self._prefill_j()).astype(np.float64))


def item_matrix(cols: RequestColumns) -> ItemMatrix:
    """Aggregate rows per (item, run) with one bincount per column, then take the means."""
    return ItemMatrix(cols)
