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
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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

# The numeric columns every run has (as float64, null as NaN).
_NUMBERS = ("energy_j", "energy_net_j", "t_scheduled", "t_sent", "t_first_token", "t_done",
            "prompt_tokens", "completion_tokens")  # fmt: skip

# What is kept of a run's columns once its numbers are converted: what is encoded or folded
# across runs.
_ACROSS = ("item_id", "domain", "status", "itl_s", "attempt", "retried")

# Every column the kernel reads: what to ask a run for (`RunData.answer_columns`), so that an
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
    item: np.ndarray  # int32 (a study has fewer than 2^31 items)
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
    # Energy from sent to first token (NaN: not split, e.g. a run written before the split;
    # None: no row split); decode energy is energy_j − prefill_energy_j (conserved exactly).
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
    def from_runs(
        cls,
        runs: Sequence[RunData],
        *,
        each: Callable[[int, pa.Table], None] | None = None,
        numbers: Sequence[str] = _NUMBERS,
    ) -> RequestColumns:
        """Columns of runs (one group per run, named by its run id), reading from each only
        the columns the kernel uses, several runs at once (Parquet decoding releases the GIL).

        A run's columns are converted as soon as they are read, and not kept: at 10 M rows a
        kept Arrow copy would be another gigabyte of fresh memory. `each(j, table)`, when
        given, sees run j's table first (a summary's digest is taken from it). Of the numeric
        columns only `numbers` are read (routing reads three of eight); the others read as
        not recorded (NaN), without memory of their own."""
        unknown = set(numbers) - set(_NUMBERS)
        if unknown:
            raise ValueError(f"no numeric request column {sorted(unknown)[0]!r}")
        wanted = [c for c in KERNEL_COLUMNS if c not in _NUMBERS or c in numbers]

        def table_of(j: int) -> pa.Table:
            table = runs[j].answer_columns(wanted if each is None else KERNEL_COLUMNS, keep=False)
            if each is not None:
                each(j, table)
            return table

        sizes = [r.answer_rows() for r in runs]
        return cls._build(sizes, table_of, [r.run_id for r in runs], numbers)

    @classmethod
    def from_tables(cls, tables: Sequence[pa.Table], groups: Sequence[str]) -> RequestColumns:
        """Columns from (checked) requests tables, one per run, group names in the same order."""
        if len(tables) != len(groups):
            raise ValueError("one group name per table")
        chosen = [_subset(t) for t in tables]
        return cls._build([t.num_rows for t in chosen], chosen.__getitem__, groups)

    @classmethod
    def _build(
        cls,
        sizes: Sequence[int],
        table_of: Callable[[int], pa.Table],
        groups: Sequence[str],
        read: Sequence[str] = _NUMBERS,
    ) -> RequestColumns:
        """Each run's table (`table_of(j)`, `sizes[j]` rows) converted on its own, several at
        once, straight into its share of the columns: one pass over each value, no
        concatenated copy first. Only the few columns needed across runs (ids, statuses,
        gaps, attempts) are kept past a run's conversion."""
        g = len(groups)
        bounds = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
        n_rows = int(bounds[-1])
        group = np.repeat(np.arange(g, dtype=np.int32), np.asarray(sizes, dtype=np.int64))
        numbers = {name: np.empty(n_rows, dtype=np.float64) for name in read}
        # Pages of np.empty cost nothing until written: a prefill column null in every run
        # (no run split its energy) is dropped unwritten (None), not 10 M NaNs.
        prefill = np.empty(n_rows, dtype=np.float64)
        split = np.zeros(g, dtype=bool)
        correct = np.empty(n_rows, dtype=bool)
        rate_limited = np.zeros(g, dtype=np.int64)

        def convert(j: int) -> pa.Table:
            part, rows = table_of(j), slice(int(bounds[j]), int(bounds[j + 1]))
            if part.num_rows != sizes[j]:
                raise ValueError(f"run {groups[j]!r}: {part.num_rows} rows, not {sizes[j]}")
            for name, out in numbers.items():
                _fill_num(part.column(name), out[rows])
            if "prefill_energy_j" in part.column_names:
                column = part.column("prefill_energy_j")
                if column.null_count < len(column):
                    _fill_num(column, prefill[rows])
                    split[j] = True
            correct[rows] = _flag(part, "correct")
            if "http_status" in part.column_names:
                rate_limited[j] = pc.sum(pc.equal(part.column("http_status"), 429)).as_py() or 0
            return part.select([c for c in _ACROSS if c in part.column_names])

        with ThreadPoolExecutor(max_workers=_workers(g)) as pool:
            parts = list(pool.map(convert, range(g)))
        for j in np.flatnonzero(~split) if split.any() else ():
            prefill[int(bounds[j]) : int(bounds[j + 1])] = math.nan
        table = pa.concat_tables(parts, promote_options="permissive")
        parts = [table.slice(int(bounds[j]), int(sizes[j])) for j in range(g)]
        with ThreadPoolExecutor(max_workers=_workers(3)) as pool:
            coded = [pool.submit(_codes, [p.column(name) for p in parts])
                     for name in ("item_id", "domain", "status")]  # fmt: skip
            (items, item), (domains, domain), (status_names, status_code) = (
                c.result() for c in coded
            )
        remap = np.array([STATUSES.index(s) for s in status_names], dtype=np.int8)  # type: ignore[arg-type]
        status = remap[status_code] if status_names else np.zeros(0, np.int8)
        itl_values = itl_offsets = None
        if "itl_s" in table.column_names:
            itl = table.column("itl_s").combine_chunks()
            if itl.null_count < len(itl):
                itl_offsets = np.asarray(itl.offsets, dtype=np.int64)
                itl_values = np.asarray(itl.values.to_numpy(zero_copy_only=False), dtype=float)
        cols = cls(
            groups=list(groups),
            items=items,
            domains=domains,
            group=group,
            item=item.astype(np.int32, copy=False),
            domain=domain,
            status=status,
            correct=correct,
            **{name: numbers.get(name, _not_read(n_rows)) for name in _NUMBERS},
            itl_values=itl_values,
            itl_offsets=itl_offsets,
            prefill_energy_j=prefill if split.any() else None,
            rate_limited=rate_limited,
        )
        return _fold_retries(cols, table, g)


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


def _not_read(n_rows: int) -> np.ndarray:
    """A numeric column that was not read: NaN (not recorded) in every row, read-only, and
    without memory of its own."""
    return np.broadcast_to(np.float64(math.nan), (n_rows,))


def _workers(tasks: int) -> int:
    """Threads for reading and converting runs: one per core (at most 4), never more than tasks."""
    return max(1, min(tasks, os.cpu_count() or 1, 4))


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


def _codes(parts: Sequence[pa.ChunkedArray]) -> tuple[list[str], np.ndarray]:
    """Distinct values, sorted, and each row's index into them (the parts' rows one after
    another). Sorted, so that the same items get the same indices (hence the same bootstrap
    weights) in whatever order rows arrived. The runs of a study usually list the same items
    (and so the same domains) in the same order: a part equal to the one before it is encoded
    once (comparing is a fraction of the cost of hashing its strings)."""
    strings = []
    for part in parts:
        part = part.cast(pa.string())
        strings.append(part.fill_null("") if part.null_count else part)
    distinct: list[pa.ChunkedArray] = []
    which: list[int] = []
    for part in strings:
        if not (distinct and len(part) == len(distinct[-1]) and part.equals(distinct[-1])):
            distinct.append(part)
        which.append(len(distinct) - 1)
    column = pa.chunked_array([c for d in distinct for c in d.chunks], type=pa.string())
    names, codes = _encode(column)
    if len(distinct) == len(strings):
        return names, codes
    starts = np.concatenate([[0], np.cumsum([len(d) for d in distinct])])
    return names, np.concatenate(
        [codes[starts[w] : starts[w + 1]] for w in which] or [np.zeros(0, codes.dtype)]
    )


def _encode(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct strings of a column (no nulls), sorted, and each row's index into them."""
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


def _fill_num(column: pa.ChunkedArray, out: np.ndarray) -> None:
    """A numeric column into `out` (float64, as long as the column), null as NaN: the same
    values as `_num`, written in place."""
    pos = 0
    for chunk in column.chunks:
        k = len(chunk)
        if pa.types.is_boolean(chunk.type) or pa.types.is_null(chunk.type):
            chunk = chunk.cast(pa.int8())
        if chunk.null_count == k:
            out[pos : pos + k] = math.nan
        elif chunk.null_count or not (
            pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)
        ):
            out[pos : pos + k] = chunk.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            # Without nulls the values are read where they lie; numpy's int → float64 is the
            # same rounding as Arrow's cast.
            out[pos : pos + k] = chunk.to_numpy(zero_copy_only=True)
        pos += k


def _flag(table: pa.Table, name: str) -> np.ndarray:
    """A boolean column as bool, null as False."""
    return np.asarray(pc.fill_null(table.column(name), False).to_numpy(), dtype=bool)


@dataclass(frozen=True)
class _Sum:
    """How an item matrix is summed from the rows: `weights(rows)` per row, added per run and
    item, divided by the item's count of attempts when `mean` (the mean of its attempts)."""

    weights: Callable[[slice], np.ndarray]
    mean: bool = True


class ItemMatrix:
    """Per item and run (n_items × runs): how often it was asked, and the mean of its attempts.

    `correct` is the share of attempts that were correct, `energy_j` etc. the mean per attempt;
    all are 0 where a run did not ask an item (`count` 0). See the module docstring for why.

    Each matrix is one bincount per run over that run's rows, made the first time it is read (a
    routing study reads five of the twelve; at 10 M rows each is 80 MB): a run's rows add to
    one stretch of memory, its weights made a run at a time (no 10 M-row temporaries), and the
    sums are those of one bincount over all rows, as bincount adds a bin's rows in row order
    either way. `by_run(name)` is the runs × n_items array, each run's items contiguous (what a
    per-run figure reads); the attributes are n_items × runs (what a cross-run figure reads),
    written so at once when first read so, else transposed. One layout of each is kept, the
    one asked for last.
    """

    def __init__(self, cols: RequestColumns) -> None:
        self._cols = cols
        self._shape = (len(cols.items), len(cols.groups))
        self._runs: dict[str, np.ndarray] = {}  # runs × n_items
        self._items: dict[str, np.ndarray] = {}  # n_items × runs

    @cached_property
    def _run_rows(self) -> list[slice] | None:
        """Each run's rows as one slice when the rows are in run order (as `from_tables` makes
        them), else None."""
        group = self._cols.group
        if group.size and not bool(np.all(group[1:] >= group[:-1])):
            return None
        bounds = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=self._shape[1]))])
        return [slice(int(bounds[j]), int(bounds[j + 1])) for j in range(self._shape[1])]

    @cached_property
    def _key(self) -> np.ndarray:
        return self._cols.group.astype(np.int64) * self._shape[0] + self._cols.item

    def by_run(self, name: str) -> np.ndarray:
        """Matrix `name` (one of the attributes) as runs × n_items: row j is run j's items."""
        found = self._runs.get(name)
        if found is None:
            item_major = self._items.pop(name, None)
            if item_major is None:
                found, _ = self._made(name, item_major=False)
            else:
                found = np.ascontiguousarray(item_major.T)
            self._runs[name] = found
        return found

    def _by_item(self, name: str) -> np.ndarray:
        found = self._items.get(name)
        if found is None:
            run_major = self._runs.pop(name, None)
            if run_major is None:
                # Made item-major at once where it is summed (each run's sums written to its
                # column): no runs × n_items matrix to make and transpose.
                found, item_major = self._made(name, item_major=True)
                if not item_major:
                    found = np.ascontiguousarray(found.T)
            else:
                found = np.ascontiguousarray(run_major.T)
            self._items[name] = found
        return found

    def _made(self, name: str, *, item_major: bool) -> tuple[np.ndarray, bool]:
        """Matrix `name`, made n_items × runs where it is summed and `item_major` asks for
        it, else runs × n_items; and whether it is n_items × runs."""
        recipe = getattr(self, f"_make_{name}")()
        if isinstance(recipe, np.ndarray):  # made from the count: runs × n_items
            return recipe, False
        total, made_item_major = self._total(recipe.weights, item_major=item_major)
        # Every item asked at most once: dividing by 1 would change nothing (it is exact).
        if recipe.mean and not self._once:
            np.divide(total, self._safe.T if made_item_major else self._safe, out=total)
        return total, made_item_major

    def _total(
        self, weights: Callable[[slice], np.ndarray] | None, *, item_major: bool = False
    ) -> tuple[np.ndarray, bool]:
        """Per run and item, the sum of `weights(rows)` (a function of a slice of the rows,
        giving the weights of those rows) over the item's rows; the count of rows for None.
        n_items × runs when `item_major` and the rows are in run order, else runs × n_items;
        the second value says which.

        With the rows in run order the bincount runs run by run, its weights made a run at a
        time (a few MB that stay warm, not a 10 M-row temporary per matrix); the same sums, as
        bincount adds a bin's rows in row order either way."""
        n_items, runs = self._shape
        rows = self._run_rows
        if rows is None:
            w = None if weights is None else weights(slice(None))
            if w is not None and not w.any():
                return np.zeros((runs, n_items)), False
            total = np.bincount(self._key, weights=w, minlength=n_items * runs)
            return total.reshape(runs, n_items).astype(np.float64, copy=False), False
        # Zeros from pages the system maps on first read: a run with nothing to add (a column
        # absent from it) costs no writing. The count is always runs × n_items (it is kept).
        item_major = item_major and weights is not None
        total = np.zeros((n_items, runs) if item_major else (runs, n_items))
        item = self._cols.item
        for j, part in enumerate(rows):
            if part.stop == part.start:
                continue
            w = None if weights is None else weights(part)
            if w is not None and not w.any():
                continue
            sums = np.bincount(item[part], weights=w, minlength=n_items)
            if item_major:
                total[:, j] = sums
            else:
                total[j] = sums
        return total, item_major

    @cached_property
    def _count(self) -> np.ndarray:
        return self._total(None)[0]

    @cached_property
    def _safe(self) -> np.ndarray:
        return np.maximum(self._count, 1.0)

    @cached_property
    def _once(self) -> bool:
        return not self._count.size or float(self._count.max()) <= 1.0

    def _make_count(self) -> np.ndarray | _Sum:
        return self._count

    def _make_answered(self) -> np.ndarray | _Sum:
        return self._count > 0

    def _make_asked(self) -> np.ndarray | _Sum:
        """`answered` as 0.0/1.0 (what the bootstrap resamples); with every item asked at
        most once that is `count` itself."""
        return self._count if self._once else (self._count > 0).astype(np.float64)

    def _make_correct(self) -> np.ndarray | _Sum:
        correct = self._cols.correct
        return _Sum(lambda rows: correct[rows].astype(np.float64))

    def _make_energy_j(self) -> np.ndarray | _Sum:
        energy = self._cols.energy_j
        return _Sum(lambda rows: nz(energy[rows]))

    def _make_energy_net_j(self) -> np.ndarray | _Sum:
        net = self._cols.energy_net_j
        return _Sum(lambda rows: nz(net[rows]))

    def _e2e(self, rows: slice) -> np.ndarray:
        return self._cols.t_done[rows] - self._cols.t_sent[rows]

    def _make_e2e_s(self) -> np.ndarray | _Sum:
        return _Sum(lambda rows: nz(self._e2e(rows)))

    def _make_power_w(self) -> np.ndarray | _Sum:
        def power_w(rows: slice) -> np.ndarray:
            e2e = self._e2e(rows)
            with np.errstate(divide="ignore", invalid="ignore"):
                power = nz(self._cols.energy_j[rows]) / e2e
            power[~(e2e > 0)] = 0.0
            return power

        return _Sum(power_w)

    def _make_prompt_tokens(self) -> np.ndarray | _Sum:
        prompt = self._cols.prompt_tokens
        return _Sum(lambda rows: nz(prompt[rows]))

    def _make_completion_tokens(self) -> np.ndarray | _Sum:
        completion = self._cols.completion_tokens
        return _Sum(lambda rows: nz(completion[rows]))

    def _make_prompt_missing(self) -> np.ndarray | _Sum:
        prompt = self._cols.prompt_tokens
        return _Sum(lambda rows: np.isnan(prompt[rows]).astype(np.float64), mean=False)

    # The request's two phases: energy and seconds from sent to first token (a request with no
    # first token is all prefill); decode is the rest (energy_j − prefill, e2e_s − prefill_s).
    def _prefill_j(self, rows: slice) -> np.ndarray:
        prefill_j = self._cols.prefill_energy_j
        if prefill_j is None:
            return np.full(len(range(*rows.indices(self._cols.n_rows))), math.nan)
        return prefill_j[rows]

    def _make_prefill_energy_j(self) -> np.ndarray | _Sum:
        if self._cols.prefill_energy_j is None:  # nothing split: nothing to add
            return np.zeros((self._shape[1], self._shape[0]))
        return _Sum(lambda rows: nz(self._prefill_j(rows)))

    def _make_prefill_s(self) -> np.ndarray | _Sum:
        def prefill_s(rows: slice) -> np.ndarray:
            e2e = self._e2e(rows)
            # In place (the same values as clip(where(isnan(ttft), e2e, ttft), 0, max(e2e, 0))).
            out = self._cols.t_first_token[rows] - self._cols.t_sent[rows]
            np.copyto(out, e2e, where=np.isnan(out))
            np.clip(out, 0.0, np.maximum(e2e, 0.0), out=out)
            return nz(out)

        return _Sum(prefill_s)

    def _make_prefill_missing(self) -> np.ndarray | _Sum:
        if self._cols.prefill_energy_j is None:  # every attempt: the count (the same sums;
            return self._count  # matrices are never written once made)
        return _Sum(lambda rows: np.isnan(self._prefill_j(rows)).astype(np.float64), mean=False)

    @property
    def count(self) -> np.ndarray:
        return self._by_item("count")

    @property
    def answered(self) -> np.ndarray:
        """Whether each run asked each item at least once."""
        return self._by_item("answered")

    @property
    def correct(self) -> np.ndarray:
        return self._by_item("correct")

    @property
    def energy_j(self) -> np.ndarray:
        return self._by_item("energy_j")

    @property
    def energy_net_j(self) -> np.ndarray:
        return self._by_item("energy_net_j")

    @property
    def e2e_s(self) -> np.ndarray:
        return self._by_item("e2e_s")

    @property
    def power_w(self) -> np.ndarray:
        """Mean of E_i / L_i over the item's attempts (the harness's average)."""
        return self._by_item("power_w")

    @property
    def prompt_tokens(self) -> np.ndarray:
        """Mean per attempt (missing counts as 0; see prompt_missing)."""
        return self._by_item("prompt_tokens")

    @property
    def completion_tokens(self) -> np.ndarray:
        return self._by_item("completion_tokens")

    @property
    def prompt_missing(self) -> np.ndarray:
        """Attempts without a prompt-token count."""
        return self._by_item("prompt_missing")

    @property
    def prefill_energy_j(self) -> np.ndarray:
        return self._by_item("prefill_energy_j")

    @property
    def prefill_s(self) -> np.ndarray:
        return self._by_item("prefill_s")

    @property
    def prefill_missing(self) -> np.ndarray:
        """Attempts whose energy was not split into phases."""
        return self._by_item("prefill_missing")


def item_matrix(cols: RequestColumns) -> ItemMatrix:
    """Aggregate rows per (item, run) with one bincount per column, then take the means."""
    return ItemMatrix(cols)
