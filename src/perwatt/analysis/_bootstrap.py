"""The resampling behind every interval perwatt reports: one weight generator, one way to sum,
one interval rule (and BCa where a verdict hangs on an interval's edge).

Intervals resample **items**, jointly for all runs of a study (a paired bootstrap: an item drawn
twice counts twice for every run that answered it), so one set of weights serves every run and
every cross-run figure and keeps their correlation. A resample is never materialised: each
resampled sum is one matrix product `weights (B × n) @ columns (n × k)`, item chunk by item
chunk. Up to `EXACT_LIMIT` items the weights are exact multinomial counts (n draws with
replacement); above, independent Poisson(1) counts (Hanley & MacGibbon 2006; used at scale by
Chamandy et al. 2012), which agree with the multinomial bootstrap to within Monte Carlo error at
that size. Every ratio divides by the resampled count of items, never by the fixed n, so the
Poisson bootstrap's random total cancels.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CI_LEVEL = 0.95
# Up to this many items the weights are exact multinomial counts; above, Poisson(1) counts.
EXACT_LIMIT = 20_000
# Items per chunk of the Poisson path: 1,000 resamples × 16,384 float32 weights = 64 MiB.
_CHUNK_ITEMS = 16_384
# An interval needs at least this share of resamples where the statistic is defined.
MIN_DEFINED = 0.9


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95% bootstrap interval.

    `value` None: undefined (e.g. J/correct with no correct answer). `low`/`high` None with a
    value: no interval, and `why` says why (a table prints it).
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    why: str = ""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


# --- weights and sums ----------------------------------------------------------------------


def _poisson_table() -> np.ndarray:
    """Poisson(1) by inverse CDF on 16 random bits: P(k) is exact to within 2⁻¹⁶."""
    cdf = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(16)])
    u = (np.arange(65536) + 0.5) / 65536
    return np.searchsorted(cdf, u, side="right").astype(np.float32)


_POISSON_F32 = _poisson_table()


def _arrow(values: np.ndarray) -> pa.Array:
    """A 1-D numpy array as an Arrow array over the same memory. (`pa.array` of a numpy array
    first asks whether it is a pandas Series, which imports pandas where it is installed: a
    fifth of a second at every start of the command line.)"""
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


_POISSON_ARROW = _arrow(_POISSON_F32)


def bootstrap_method(n: int) -> str:
    """How `bootstrap_sums` draws its weights for n items (stated in reports)."""
    if n <= EXACT_LIMIT:
        return "paired bootstrap over items (multinomial resampling)"
    return "paired bootstrap over items (Poisson(1) weights; n > 20,000)"


def bootstrap_weights(n: int, resamples: int, seed: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield `(start, stop, W)`: the bootstrap weight of items start..stop in each resample.

    W has shape (resamples, stop - start). Up to `EXACT_LIMIT` items there is one chunk of
    exact multinomial counts (each row sums to n); above it, chunks of independent Poisson(1)
    counts. The same n, resamples and seed always give the same weights.
    """
    if n <= 0 or resamples <= 0:
        return
    if n <= EXACT_LIMIT:
        rng = np.random.default_rng(seed)
        counts = np.empty((resamples, n), dtype=np.float64)
        step = max(1, 2_000_000 // n)  # resamples per batch, bounding the index array
        for b0 in range(0, resamples, step):
            b1 = min(resamples, b0 + step)
            idx = rng.integers(0, n, size=(b1 - b0, n))
            idx += (np.arange(b1 - b0) * n)[:, None]
            counts[b0:b1] = np.bincount(idx.ravel(), minlength=(b1 - b0) * n).reshape(b1 - b0, n)
        yield 0, n, counts
        return
    for start, seq in zip(range(0, n, _CHUNK_ITEMS), _chunk_seeds(n, seed), strict=True):
        stop = min(n, start + _CHUNK_ITEMS)
        yield start, stop, _poisson_chunk(seq, resamples, stop - start)


def _chunk_seeds(n: int, seed: int) -> list[np.random.SeedSequence]:
    """One independent stream per item chunk, so chunks can be drawn in any order or thread."""
    return np.random.SeedSequence(seed).spawn(-(-n // _CHUNK_ITEMS))


def _poisson_chunk(seq: np.random.SeedSequence, resamples: int, width: int) -> np.ndarray:
    size = resamples * width
    raw = np.random.PCG64(seq).random_raw((size + 3) // 4).view(np.uint16)[:size]
    # Arrow's take reads the 16-bit indices as they are (numpy's indexing would first widen
    # them to 64 bits: 128 MB more per chunk) and allocates from a pool that reuses its pages:
    # the same weights, in a third of the time.
    taken = pc.take(_POISSON_ARROW, _arrow(raw))  # no nulls: the values buffer is all of it
    weights = np.frombuffer(taken.buffers()[1], dtype=np.float32, count=size, offset=0)
    return weights.reshape(resamples, width)


def bootstrap_sums(
    columns: np.ndarray | Sequence[np.ndarray], resamples: int, seed: int
) -> np.ndarray:
    """The column sums of `resamples` bootstrap resamples of the rows of `columns` (n × k).

    `columns` is one array or a sequence of blocks with the same rows (n × k_i each, or 1-D),
    taken side by side without copying them into one matrix. Rows are the resampling units
    (items); returns a (resamples, k) float64 array. NaN in a column would poison every
    resample that draws its row: callers pass zeros for "absent".
    """
    blocks = [columns] if isinstance(columns, np.ndarray) else list(columns)
    blocks = [b[:, None] if b.ndim == 1 else b for b in (np.asarray(b) for b in blocks)]
    n = blocks[0].shape[0] if blocks else 0
    if any(b.shape[0] != n for b in blocks):
        raise ValueError("every block needs the same rows")
    k = sum(b.shape[1] for b in blocks)
    out = np.zeros((resamples, k), dtype=np.float64)
    if n == 0 or resamples <= 0:
        return out
    if n <= EXACT_LIMIT:
        # Row-major whatever the blocks' layout, so that the product is the same (BLAS may
        # add in another order for a transposed operand).
        x = np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)
        for start, stop, w in bootstrap_weights(n, resamples, seed):
            out += w @ x[start:stop]
        return out
    # Large n: a column of zeros sums to zeros, and a column equal to its block's first
    # (every run's count of items when all runs asked them all; prompt tokens of the same
    # prompts) has that one's sums: only the others enter the product.
    columns = [(i, c) for i, b in enumerate(blocks) for c in range(b.shape[1])]
    source: list[int | None] = []  # per output column: its column in the product, or None
    kept: list[tuple[int, int]] = []
    first: dict[int, int] = {}
    for i, c in columns:
        column = blocks[i][:, c]
        if not column.any():
            source.append(None)
        elif c > 0 and i in first and np.array_equal(column, blocks[i][:, 0]):
            source.append(first[i])
        else:
            if c == 0:
                first[i] = len(kept)
            source.append(len(kept))
            kept.append((i, c))
    summed = _poisson_sums(blocks, kept, n, resamples, seed)
    for k, found in enumerate(source):
        if found is not None:
            out[:, k] = summed[:, found]
    return out


def _poisson_sums(
    blocks: list[np.ndarray], kept: list[tuple[int, int]], n: int, resamples: int, seed: int
) -> np.ndarray:
    """Resampled sums of the columns `kept` ((block, column) pairs) under Poisson(1) weights.

    Two helper threads draw the next chunks' weights (numpy releases the GIL there) while this
    one multiplies. Each chunk has its own random stream, so the weights do not depend on the
    threads' timing. The product is float32 (twice the speed; ~1e-7 relative error per chunk,
    far below Monte Carlo error), accumulated in float64."""
    k = len(kept)
    out = np.zeros((resamples, k), dtype=np.float64)
    if k == 0:
        return out
    runs = _column_runs(kept)
    starts = list(range(0, n, _CHUNK_ITEMS))
    seeds = _chunk_seeds(n, seed)
    buffer = np.empty((min(n, _CHUNK_ITEMS), k), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = deque(
            pool.submit(_poisson_chunk, seeds[i], resamples, min(n, s + _CHUNK_ITEMS) - s)
            for i, s in enumerate(starts[:2])
        )
        for i, start in enumerate(starts):
            w = pending.popleft().result()
            if i + 2 < len(starts):
                nxt = starts[i + 2]
                width = min(n, nxt + _CHUNK_ITEMS) - nxt
                pending.append(pool.submit(_poisson_chunk, seeds[i + 2], resamples, width))
            stop = start + w.shape[1]
            x = buffer[: stop - start]
            for block, c0, c1, at in runs:
                x[:, at : at + c1 - c0] = blocks[block][start:stop, c0:c1]
            out += w @ x
    return out


def _column_runs(kept: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """`kept` as runs of adjacent columns of one block: (block, first, stop, where in the
    product), so that a chunk is copied a block slice at a time."""
    runs: list[list[int]] = []
    for at, (i, c) in enumerate(kept):
        if runs and runs[-1][0] == i and runs[-1][2] == c:
            runs[-1][2] = c + 1
        else:
            runs.append([i, c, c + 1, at])
    return [(i, c0, c1, at) for i, c0, c1, at in runs]


def block_resample_sums(blocks: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column sums of `resamples` resamples of the rows of `blocks` (m × k), drawn with
    replacement: the block bootstrap over time windows, where units cannot be items."""
    m = blocks.shape[0]
    if m == 0:
        return np.zeros((resamples, blocks.shape[1]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(resamples, m))
    counts = np.zeros((resamples, m))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts @ blocks


# --- intervals ------------------------------------------------------------------------------


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, inf/NaN where den is 0 (left to `interval` to judge)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def interval(stat: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile interval of a bootstrap statistic; None when too many resamples are undefined."""
    finite = stat[np.isfinite(stat)]
    if finite.size == 0 or finite.size < MIN_DEFINED * stat.size:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def estimate(point: float | None, stat: np.ndarray | None, *, why: str = "") -> Estimate:
    """An Estimate from a point value and the statistic's bootstrap replicates.

    When the replicates give no interval (too many undefined), `why` (or a default sentence)
    says so.
    """
    if point is None or not math.isfinite(point):
        return Estimate(None)
    point = float(point)
    if stat is None:
        return Estimate(point, why=why)
    bounds = interval(stat)
    if bounds is None:
        defined = float(np.isfinite(stat).mean()) if stat.size else 0.0
        return Estimate(point, why=why or f"undefined in {1 - defined:.0%} of resamples")
    return Estimate(point, *bounds)


def bca_interval(
    point: float, stat: np.ndarray, jackknife: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, float] | None:
    """Bias-corrected and accelerated (BCa) interval (Efron 1987) from bootstrap replicates and
    leave-one-out (jackknife) values; better small-sample coverage than the percentile interval.
    None when too many replicates are undefined."""
    normal = NormalDist()
    finite = stat[np.isfinite(stat)]
    if finite.size == 0 or finite.size < MIN_DEFINED * stat.size:
        return None
    jack = jackknife[np.isfinite(jackknife)]
    below = float(np.mean(finite < point)) + 0.5 * float(np.mean(finite == point))
    below = min(max(below, 1.0 / (finite.size + 1)), 1 - 1.0 / (finite.size + 1))
    z0 = normal.inv_cdf(below)
    acceleration = 0.0
    if jack.size > 2:
        d = jack.mean() - jack
        denom = 6.0 * float((d**2).sum()) ** 1.5
        acceleration = float((d**3).sum()) / denom if denom > 0 else 0.0
    adjusted = []
    for tail in ((1 - level) / 2, 1 - (1 - level) / 2):
        z = normal.inv_cdf(tail)
        denominator = 1 - acceleration * (z0 + z)
        if denominator <= 0:
            return None
        adjusted.append(normal.cdf(z0 + (z0 + z) / denominator))
    low, high = np.percentile(finite, [100 * a for a in adjusted])
    return float(low), float(high)
