"""Coverage and routing across runs: how much traffic cheaper models can serve, and what routing
saves in joules, FLOPs and dollars against sending everything to a reference model.

Every policy here is a routing matrix P (items × candidates): P[i, m] is the probability that
item i goes to candidate m. Always-m, the oracle and a learned router are one-hot; an α-accurate
router spreads 1 − α over the wrong choices. Accuracy, energy, compute and cost of a policy are
then Σ_i Σ_m P[i, m] · x[i, m] — expectations, exact and analytic — and their 95% intervals come
from one paired bootstrap over items (`_bootstrap.bootstrap_sums`).

Candidates are the measured runs (each a model on some hardware) and, optionally, an external
profile for a cloud model whose energy and prices the user states: its figures are labelled
"stated", never "measured".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from perwatt.analysis._bootstrap import (
    Estimate,
    bootstrap_method,
    bootstrap_sums,
    estimate,
    ratio,
)
from perwatt.analysis._columns import RequestColumns, item_matrix
from perwatt.analysis.metrics import pareto_frontier
from perwatt.analysis.units import DEFAULT_USD_PER_KWH, J_PER_KWH
from perwatt.errors import PerwattError
from perwatt.store import RunData, read_run

MAX_SUBSET_MODELS = 20  # coverage of every subset: 2^20 subsets, an 8 MiB table
MISROUTES = ("reference", "random")
DEFAULT_ALPHAS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CURVE_SHARES = tuple(round(0.05 * k, 2) for k in range(21))
STATED = "stated"
# The numeric request columns a routing study reads (with each row's item and verdict).
ROUTING_NUMBERS = ("energy_j", "prompt_tokens", "completion_tokens")


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalProfile:
    """A cloud (or any unmeasured) model described by the user; its figures are stated.

    Energy per item = `j_per_token` × tokens; cost = tokens × the stated prices per million
    input/output tokens. Correctness comes from a run of that model (`accuracy_from` = a run
    directory or a run among the routed ones, e.g. one measured with `perwatt run --endpoint`;
    that run then leaves the local pool) or is assumed ("assume_correct": it answers every item
    correctly — an upper bound the tables say out loud).
    """

    name: str
    j_per_token: float
    usd_per_mtok_in: float
    usd_per_mtok_out: float
    accuracy_from: str
    active_params: int | None = None

    @property
    def assume_correct(self) -> bool:
        return self.accuracy_from == "assume_correct"

    @classmethod
    def parse(cls, spec: str) -> ExternalProfile:
        """Parse `name=gpt-x,j_per_token=2,usd_per_mtok_in=1.25,usd_per_mtok_out=10,
        accuracy_from=RUN|assume_correct[,active_params=N]`."""
        fields_: dict[str, str] = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise PerwattError(f"reference profile: expected key=value, got {part.strip()!r}")
            fields_[key.strip()] = value.strip()
        required = ("name", "j_per_token", "usd_per_mtok_in", "usd_per_mtok_out", "accuracy_from")
        known = (*required, "active_params")
        for key in fields_:
            if key not in known:
                raise PerwattError(
                    f"reference profile: unknown key {key!r}; known: {', '.join(known)}"
                )
        for key in required:
            if key not in fields_:
                raise PerwattError(f"reference profile: {key}= is required")

        def number(key: str) -> float:
            try:
                value = float(fields_[key])
            except ValueError:
                raise PerwattError(
                    f"reference profile: {key} must be a number, not {fields_[key]!r}"
                ) from None
            if not math.isfinite(value) or value < 0:
                raise PerwattError(f"reference profile: {key} must be ≥ 0, not {fields_[key]}")
            return value

        active = None
        if "active_params" in fields_:
            active = int(number("active_params"))
            if active <= 0:
                raise PerwattError("reference profile: active_params must be positive")
        return cls(
            name=fields_["name"],
            j_per_token=number("j_per_token"),
            usd_per_mtok_in=number("usd_per_mtok_in"),
            usd_per_mtok_out=number("usd_per_mtok_out"),
            accuracy_from=fields_["accuracy_from"],
            active_params=active,
        )


@dataclass(frozen=True)
class Candidate:
    """One routing target: a measured run, or the external profile."""

    name: str
    kind: str  # "measured" or "external"
    run_id: str | None
    run_path: str | None
    energy_label: str  # the run's label ("estimated:cputime", "measured:nvml") or "stated"
    active_params: int | None
    items_answered: int  # items this run asked, before keeping the shared ones
    accuracy: float  # on the shared items
    energy_per_query_j: float  # on the shared items
    energy_band: str = ""  # how far off an estimate may be (e.g. ×/÷2); "" for a counter


@dataclass(frozen=True)
class LeftOut:
    """Items a run answered that not every run answered (left out of the analysis)."""

    name: str
    item_ids: list[str]


@dataclass(frozen=True)
class Study:
    """Per shared item and candidate: correctness, energy, compute and cost (items × M)."""

    candidates: list[Candidate]
    reference: int
    items: list[str]
    correct: np.ndarray  # share of correct attempts (0 or 1 for an item asked once)
    energy_j: np.ndarray
    flops: np.ndarray  # NaN where the candidate's active parameters are unknown
    cost_usd: np.ndarray
    tokens_basis: str
    usd_per_kwh: float
    usd_per_kwh_default: bool
    left_out: list[LeftOut] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def measured(self) -> list[int]:
        return [j for j, c in enumerate(self.candidates) if c.kind == "measured"]

    @property
    def mixed_labels(self) -> bool:
        """Whether measured candidates mix estimated and measured energy."""
        kinds = {self.candidates[j].energy_label.partition(":")[0] for j in self.measured}
        return len(kinds) > 1


def _pick(runs: Sequence[RunData], names: Sequence[str], wanted: str, what: str) -> int:
    """The index of the run that `wanted` names: a path, a run id or a (unique) model name."""
    for j, run in enumerate(runs):
        if Path(wanted).exists() and Path(wanted).resolve() == run.path.resolve():
            return j
    matches = [j for j, run in enumerate(runs) if wanted in (run.run_id, names[j], run.model)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise PerwattError(f"{what} {wanted!r} matches {len(matches)} runs; name a run directory")
    raise PerwattError(
        f"{what} {wanted!r} is none of the runs given ({', '.join(names)}); "
        "name one of them or its run directory"
    )


def build_study(
    runs: Sequence[RunData],
    *,
    reference: str | None = None,
    profile: ExternalProfile | None = None,
    usd_per_kwh: float | None = None,
) -> Study:
    """Line up the runs on the items they all answered and price every answer.

    The reference is `reference` (a run directory, run id or model name among `runs`), the
    external `profile`, or by default the most accurate run. A run whose items do not overlap
    the others' is an error, never silently dropped.
    """
    if not runs:
        raise PerwattError("no runs to route between")
    if reference is not None and profile is not None:
        raise PerwattError("give either --reference or --reference-profile, not both")
    if usd_per_kwh is not None and (not math.isfinite(usd_per_kwh) or usd_per_kwh < 0):
        raise PerwattError(f"--usd-per-kwh must be ≥ 0, not {usd_per_kwh}")
    notes: list[str] = []
    runs = list(runs)
    names = _names(runs)

    source_run: RunData | None = None
    if profile is not None and not profile.assume_correct:
        path = Path(profile.accuracy_from)
        if any(Path(r.path).resolve() == path.resolve() for r in runs) or not path.exists():
            j = _pick(runs, names, profile.accuracy_from, "accuracy_from")
            source_run = runs.pop(j)
            names.pop(j)
            notes.append(
                f"{source_run.run_id} supplies {profile.name}'s answers and tokens, so it is "
                "not routed to as a local model"
            )
        else:
            source_run = read_run(path)
    if not runs:
        raise PerwattError("no measured runs left to route between")

    all_runs = [*runs, source_run] if source_run is not None else runs
    # Routing reads each item's verdict, energy and tokens: no times are converted.
    cols = RequestColumns.from_runs(all_runs, numbers=ROUTING_NUMBERS)
    per = item_matrix(cols)
    answered = per.answered
    _check_overlap(answered, [*names, *(["accuracy_from"] if source_run else [])])
    shared_mask = answered.all(axis=1)
    shared = np.flatnonzero(shared_mask)
    left_out = [
        LeftOut(name, [cols.items[i] for i in np.flatnonzero(answered[:, j] & ~shared_mask)])
        for j, name in enumerate(names)
    ]
    left_out = [lo for lo in left_out if lo.item_ids]
    if left_out:
        notes.append(
            f"{int((answered.any(axis=1) & ~shared_mask).sum())} items answered by only some "
            f"runs are left out; {shared.size} items are shared by all"
        )

    m_runs = len(runs)
    # The kernel's per-item rule: an item asked more than once counts with the mean of its
    # attempts, so `correct` is each run's share of correct attempts (0 or 1 when asked once).
    every = shared.size == len(cols.items)

    def on_shared(x: np.ndarray) -> np.ndarray:
        return x if every else x[shared]

    correct = on_shared(per.correct)
    energy = on_shared(per.energy_j)
    prompt = on_shared(per.prompt_tokens)
    completion = on_shared(per.completion_tokens)
    prompt_known = bool(np.all(on_shared(per.prompt_missing) == 0))
    tokens_basis = "prompt + completion tokens" if prompt_known else "completion tokens only"
    if not prompt_known:
        notes.append(
            "prompt tokens are not recorded in every run: compute (and stated per-token energy "
            "and cost) count completion tokens only"
        )
        prompt = np.zeros_like(prompt)
    tokens = prompt + completion

    price = DEFAULT_USD_PER_KWH if usd_per_kwh is None else usd_per_kwh
    candidates: list[Candidate] = []
    flops = np.full((shared.size, m_runs), np.nan)
    for j, run in enumerate(runs):
        active = run.manifest.model.active_params
        if active:
            flops[:, j] = 2.0 * float(active) * tokens[:, j]
        candidates.append(
            Candidate(
                name=names[j],
                kind="measured",
                run_id=run.run_id,
                run_path=str(run.path),
                energy_label=run.manifest.energy.label,
                energy_band=run.manifest.energy.totals.band,
                active_params=int(active) if active else None,
                items_answered=int(answered[:, j].sum()),
                accuracy=float(correct[:, j].mean()) if shared.size else 0.0,
                energy_per_query_j=float(energy[:, j].mean()) if shared.size else 0.0,
            )
        )
    correct_m = correct[:, :m_runs]
    energy_m = energy[:, :m_runs]
    cost_m = energy_m / J_PER_KWH * price

    if profile is not None:
        if source_run is not None:
            ext_correct = correct[:, m_runs]
            ext_prompt, ext_completion = prompt[:, m_runs], completion[:, m_runs]
            source = f"answers from run {source_run.run_id}"
        else:
            ext_correct = np.ones(shared.size)
            ext_prompt = np.median(prompt[:, :m_runs], axis=1)
            ext_completion = np.median(completion[:, :m_runs], axis=1)
            source = "assumed correct on every item (an upper bound)"
            notes.append(
                f"{profile.name} is assumed to answer every item correctly; its tokens per item "
                "are the median over the measured runs"
            )
        ext_tokens = ext_prompt + ext_completion
        ext_energy = profile.j_per_token * ext_tokens
        ext_cost = (
            ext_prompt * profile.usd_per_mtok_in + ext_completion * profile.usd_per_mtok_out
        ) / 1e6
        ext_flops = (
            2.0 * profile.active_params * ext_tokens
            if profile.active_params
            else np.full(shared.size, np.nan)
        )
        if not profile.active_params:
            notes.append(f"{profile.name} states no active_params: compute savings are unknown")
        candidates.append(
            Candidate(
                name=profile.name,
                kind="external",
                run_id=source_run.run_id if source_run else None,
                run_path=str(source_run.path) if source_run else None,
                energy_label=STATED,
                active_params=profile.active_params,
                items_answered=int(answered[:, m_runs].sum()) if source_run else shared.size,
                accuracy=float(ext_correct.mean()) if shared.size else 0.0,
                energy_per_query_j=float(ext_energy.mean()) if shared.size else 0.0,
            )
        )
        notes.append(
            f"reference {profile.name} is an external profile: {profile.j_per_token:g} J/token, "
            f"${profile.usd_per_mtok_in:g}/${profile.usd_per_mtok_out:g} per million input/output "
            f"tokens, as stated by the user (not measured); {source}"
        )
        correct_m = np.column_stack([correct_m, ext_correct])
        energy_m = np.column_stack([energy_m, ext_energy])
        cost_m = np.column_stack([cost_m, ext_cost])
        flops = np.column_stack([flops, ext_flops])
        ref = len(candidates) - 1
    elif reference is not None:
        ref = _pick(runs, names, reference, "reference")
    else:
        # Most accurate on the shared items; ties go to the larger model (the "strong" one).
        ref = max(
            range(m_runs),
            key=lambda j: (candidates[j].accuracy, candidates[j].active_params or 0),
        )
    study = Study(
        candidates=candidates,
        reference=ref,
        items=list(cols.items) if every else [cols.items[i] for i in shared],
        correct=correct_m.astype(float),
        energy_j=energy_m,
        flops=flops,
        cost_usd=cost_m,
        tokens_basis=tokens_basis,
        usd_per_kwh=price,
        usd_per_kwh_default=usd_per_kwh is None,
        left_out=left_out,
        notes=notes,
    )
    if study.mixed_labels:
        notes.append(
            "MIXED ENERGY LABELS: some runs' energy is estimated and others' measured; "
            "savings mix the two and are only as good as the estimate"
        )
    return study


def _names(runs: Sequence[RunData]) -> list[str]:
    base = [r.model for r in runs]
    return [b if base.count(b) == 1 else f"{b}@{r.run_id}" for b, r in zip(base, runs, strict=True)]


def _check_overlap(answered: np.ndarray, names: Sequence[str]) -> None:
    g = answered.shape[1]
    if g < 2:
        return
    for j in range(g):
        others = np.delete(answered, j, axis=1).any(axis=1)
        if not (answered[:, j] & others).any():
            raise PerwattError(
                f"run {names[j]} shares no item with the other runs: routing compares answers "
                "to the same items (same workload, seed and limit)"
            )
    if not answered.all(axis=1).any():
        raise PerwattError("no item was answered by every run; routing needs shared items")


# --- outcomes of routing policies -------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """The share of items a policy sends to one candidate."""

    name: str
    share: float


@dataclass(frozen=True)
class Outcome:
    """What a routing policy delivers over the shared items, and what it saves against sending
    every item to the reference. Savings are shares of the reference's total (0.8 = 80% less)."""

    policy: str
    accuracy: Estimate
    reference_share: float
    energy_j: float
    energy_label: str
    flops: float | None
    cost_usd: float
    energy_saved_j: float
    energy_saved: Estimate
    compute_saved: Estimate | None
    cost_saved: Estimate
    shares: list[Share]


def oracle_choice(correct: np.ndarray, energy: np.ndarray, reference: int) -> np.ndarray:
    """Per item, the candidate the oracle picks: the one that answers it best (its share of
    correct attempts; 1 or 0 for an item asked once), the least-energy one among equals; an item
    no candidate answers goes to the reference. `correct` and `energy` are (n_items × M)."""
    n = correct.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    best = correct.max(axis=1, keepdims=True)
    tied = (correct == best) & (best > 0)
    choice = np.argmin(np.where(tied, energy, np.inf), axis=1)
    return np.where(best[:, 0] > 0, choice, reference)


def subset_coverage(correct: np.ndarray) -> np.ndarray:
    """Coverage of every subset of models, indexed by bitmask (bit m = model m): the mean over
    items of the best share of correct attempts within the subset (for items asked once, the
    share of items at least one model of the subset answers correctly).

    Per threshold level t of the shares, f_t(T) = items whose set of models reaching t lies
    inside T (a sum-over-subsets transform of the histogram of per-item masks: M passes over 2^M
    counts); coverage(S) = Σ_t Δt · (1 − f_t(complement of S) / n).
    """
    n, m = correct.shape
    if m > MAX_SUBSET_MODELS:
        raise PerwattError(f"coverage of every subset is limited to {MAX_SUBSET_MODELS} models")
    out = np.zeros(1 << m)
    if n == 0:
        return out
    levels = np.unique(correct[correct > 0])
    previous = 0.0
    full = (1 << m) - 1
    subsets = np.arange(1 << m)
    for level in levels:
        masks = (correct >= level).astype(np.int64) @ (np.int64(1) << np.arange(m, dtype=np.int64))
        f = np.bincount(masks, minlength=1 << m).astype(np.int64)
        for bit in range(m):
            view = f.reshape(-1, 2, 1 << bit)
            view[:, 1, :] += view[:, 0, :]
        out += (float(level) - previous) * (n - f[full ^ subsets]) / n
        previous = float(level)
    return out


def best_subsets(coverage: np.ndarray) -> list[tuple[int, float]]:
    """For each subset size k = 1..M, the (bitmask, coverage) of the best subset of that size."""
    m = int(coverage.size).bit_length() - 1
    sizes = np.bitwise_count(np.arange(coverage.size, dtype=np.uint32))
    out = []
    for k in range(1, m + 1):
        masks = np.flatnonzero(sizes == k)
        top = int(masks[np.argmax(coverage[masks])])
        out.append((top, float(coverage[top])))
    return out


@dataclass(frozen=True)
class Mixture:
    """A routing matrix kept as its terms: P = Σ_t weight_t · one_hot(choice_t) (items × M).

    Always-m, the oracle and the α-accurate router that misroutes to the reference are one or
    two such terms (`choice` an item's candidate, or one candidate for every item). Materialised
    each would be an items × M matrix, 80 MB at 500,000 items and 20 candidates; `evaluate` reads
    the terms instead: a policy's figures, and their resampled sums, are the weighted sums of
    its terms' (Σ_i P[i, m] x[i, m] is linear in P), so each distinct term is summed once and
    six α-routers cost no more than the oracle they mix with the reference.
    """

    n: int
    m: int
    terms: tuple[tuple[float, np.ndarray | int], ...]

    def dense(self) -> np.ndarray:
        out: np.ndarray | None = None
        for weight, choice in self.terms:
            p = np.zeros((self.n, self.m))
            p[np.arange(self.n), choice] = 1.0
            term = p if weight == 1.0 and len(self.terms) == 1 else weight * p
            out = term if out is None else out + term
        return np.zeros((self.n, self.m)) if out is None else out


def always_policy(study: Study, m: int) -> Mixture:
    """Every item to candidate m."""
    return Mixture(study.n_items, len(study.candidates), ((1.0, m),))


def oracle_policy(study: Study) -> Mixture:
    """Each item to the least-energy candidate that answers it correctly, else the reference."""
    choice = oracle_choice(study.correct, study.energy_j, study.reference)
    return Mixture(study.n_items, len(study.candidates), ((1.0, choice),))


def always(study: Study, m: int) -> np.ndarray:
    """The routing matrix that sends every item to candidate m."""
    return always_policy(study, m).dense()


def oracle_matrix(study: Study) -> np.ndarray:
    """Each item to the least-energy candidate that answers it correctly, else the reference."""
    return oracle_policy(study).dense()


def one_hot(choice: np.ndarray, m: int) -> np.ndarray:
    return Mixture(choice.size, m, ((1.0, choice),)).dense()


def alpha_matrix(study: Study, alpha: float, misroute: str = "reference") -> np.ndarray:
    """The routing matrix of an α-accurate router (its exact expectation, per item): see
    `alpha_policy`."""
    policy = alpha_policy(study, alpha, misroute)
    return policy.dense() if isinstance(policy, Mixture) else policy


def alpha_policy(
    study: Study, alpha: float, misroute: str = "reference", oracle: Mixture | None = None
) -> Mixture | np.ndarray:
    """The α-accurate router's routing policy (its exact expectation, per item): a `Mixture`
    when it misroutes to the reference, else a routing matrix.

    With probability α the router makes the oracle's choice (the candidate that answers best,
    the least-energy one among equals, else the reference). Otherwise it misroutes:

    - `reference` (default, the reference study's reading): the item goes to the reference
      model — so its savings are exactly α × the oracle's (the study's 80%-router figures are
      0.8 × its oracle figures);
    - `random`: to one of the other M − 1 candidates uniformly at random, the reference
      included when it was not the oracle's choice. A wrong choice may still answer correctly,
      or cost less (a cheaper model that answers incorrectly).

    With one candidate the router has no wrong choice and equals the oracle.
    """
    if not 0.0 <= alpha <= 1.0:
        raise PerwattError(f"α must lie in [0, 1], not {alpha}")
    if misroute not in MISROUTES:
        raise PerwattError(f"--misroute must be reference or random, not {misroute!r}")
    oracle = oracle or oracle_policy(study)
    m = len(study.candidates)
    if m == 1:
        return oracle
    if misroute == "reference":
        return Mixture(oracle.n, m, ((alpha, oracle.terms[0][1]), (1 - alpha, study.reference)))
    dense = oracle.dense()
    return alpha * dense + (1 - alpha) * (1 - dense) / (m - 1)


def simulate_alpha_router(
    study: Study, alpha: float, *, trials: int, seed: int, misroute: str = "random"
) -> np.ndarray:
    """Mean per-candidate routing frequency of `trials` seeded draws of the α-accurate router.

    Each trial routes every item once, as `alpha_matrix` describes; the mean of the one-hot
    choices converges to `alpha_matrix(study, alpha, misroute)` (a check of the expectation).
    """
    rng = np.random.default_rng(seed)
    n, m = study.n_items, len(study.candidates)
    oracle = oracle_choice(study.correct, study.energy_j, study.reference)
    if misroute == "reference":
        freq = np.zeros((n, m))
        for _ in range(trials):
            choice = np.where(rng.random(n) < alpha, oracle, study.reference)
            freq[np.arange(n), choice] += 1
        return freq / trials
    freq = np.zeros((n, m))
    for _ in range(trials):
        right = rng.random(n) < alpha
        # A uniformly random candidate other than the oracle's: draw from M − 1, skip o_i.
        other = rng.integers(0, max(m - 1, 1), size=n)
        other = other + (other >= oracle)
        choice = np.where(right | (m == 1), oracle, other)
        freq[np.arange(n), choice] += 1
    return freq / trials


# The four figures every policy sums per item: Study attributes, in this order.
_FIGURES = ("correct", "energy_j", "flops", "cost_usd")


@dataclass(frozen=True, eq=False)
class _Basis:
    """Per-item figures (n × 4, `_FIGURES`) that policies are weighted sums of: a candidate's
    own columns (`candidate` set, read from the study in place) or the figures of one
    per-item choice or dense routing matrix (`columns`), with their totals and how many items
    it sends to each candidate."""

    totals: np.ndarray  # 4: each figure summed over items (NaN: unknown for some item)
    routed: np.ndarray  # M: items sent to each candidate
    candidate: int | None = None
    columns: np.ndarray | None = None


def _bases(
    study: Study, policies: Sequence[tuple[str, np.ndarray | Mixture]]
) -> tuple[list[_Basis], list[list[tuple[float, int]]]]:
    """The distinct bases of `policies` (every candidate first, always-m's) and each policy as
    (weight, basis) terms. A choice array shared by several policies (the oracle's, in every
    α-router) is one basis."""
    n, m = study.n_items, len(study.candidates)
    xs = [getattr(study, name) for name in _FIGURES]
    column_totals = np.stack([x.sum(axis=0) for x in xs], axis=1)  # M × 4
    bases = [_Basis(column_totals[j], n * np.eye(m)[j], candidate=j) for j in range(m)]
    by_choice: dict[int, int] = {}
    rows = np.arange(n)

    def own(columns: np.ndarray, routed: np.ndarray) -> int:
        bases.append(_Basis(columns.sum(axis=0), routed, columns=columns))
        return len(bases) - 1

    terms: list[list[tuple[float, int]]] = []
    for _, p in policies:
        if isinstance(p, Mixture):
            found = []
            for weight, choice in p.terms:
                if isinstance(choice, (int, np.integer)):
                    found.append((float(weight), int(choice)))
                    continue
                key = id(choice)
                if key not in by_choice:
                    picked = np.column_stack([x[rows, choice] for x in xs])
                    by_choice[key] = own(picked, np.bincount(choice, minlength=m).astype(float))
                found.append((float(weight), by_choice[key]))
            terms.append(found)
        else:
            picked = np.column_stack([np.where(p > 0, p * x, 0.0).sum(axis=1) for x in xs])
            terms.append([(1.0, own(picked, p.sum(axis=0)))])
    return bases, terms


def evaluate(
    study: Study,
    policies: Sequence[tuple[str, np.ndarray | Mixture]],
    *,
    resamples: int = 1000,
    seed: int = 0,
    extra_columns: np.ndarray | None = None,
) -> tuple[list[Outcome], np.ndarray | None]:
    """Outcomes of routing policies (routing matrices or `Mixture`s) with 95% paired-bootstrap
    intervals over items.

    A policy's figures are the weighted sums of its terms' (`_bases`); the bootstrap resamples
    each basis once. `extra_columns` (n_items × k) ride along in the same resamples; their
    resampled sums are the second value (coverage uses them), so a report draws its weights
    once."""
    n, m = study.n_items, len(study.candidates)
    bases, terms = _bases(study, policies)
    # Resampled sums, laid out as the blocks: each figure's M candidate columns, then four
    # columns per other basis, the extra columns, and a count of each resample's items
    # (accuracy divides by it, never by the fixed n: with Poisson weights above 20,000 items
    # the count varies; at or below it is exactly n).
    own = [b.columns for b in bases if b.columns is not None]
    where = [
        [q * m + b.candidate for q in range(4)] if b.candidate is not None
        else [4 * m + 4 * (k - m) + q for q in range(4)]
        for k, b in enumerate(bases)
    ]  # fmt: skip
    sums = None
    if n:
        # NaN (an unknown FLOP count) would poison every resample: zeros, and the policy's
        # total says the figure is unknown.
        blocks = [_finite(getattr(study, name)) for name in _FIGURES]
        blocks += [_finite(columns) for columns in own]
        extra = [] if extra_columns is None else [np.asarray(extra_columns)]
        sums = bootstrap_sums([*blocks, *extra, np.ones((n, 1))], resamples, seed)

    def figure(found: list[tuple[float, int]], q: int) -> tuple[float, np.ndarray | None]:
        """Figure q's total and resampled sums under a policy's terms (zero weights skipped:
        0 × an unknown total is no term)."""
        live = [(w, k) for w, k in found if w != 0.0]
        total = float(sum(w * bases[k].totals[q] for w, k in live))
        boot = None
        if sums is not None:
            boot = np.zeros(resamples)
            for w, k in live:
                boot += w * sums[:, where[k][q]]
        return total, boot

    ref_terms = [(1.0, study.reference)]
    ref = [figure(ref_terms, q) for q in range(4)]
    outcomes = []
    for (name, _), found in zip(policies, terms, strict=True):
        (c, c_boot), (e, e_boot), (f, f_boot), (cost, cost_boot) = (
            figure(found, q) for q in range(4)
        )
        live = [(w, k) for w, k in found if w != 0.0]
        routed = sum((w * bases[k].routed for w, k in live), np.zeros(m))
        routed = routed / n if n else np.zeros(m)
        compute_known = math.isfinite(f) and math.isfinite(ref[2][0])
        outcomes.append(
            Outcome(
                policy=name,
                accuracy=estimate(
                    c / n if n else None, None if sums is None else ratio(c_boot, sums[:, -1])
                ),
                reference_share=float(routed[study.reference]),
                energy_j=e,
                energy_label=" + ".join(
                    sorted({study.candidates[j].energy_label for j in np.flatnonzero(routed > 0)})
                ),
                flops=f if math.isfinite(f) else None,
                cost_usd=cost,
                energy_saved_j=float(ref[1][0] - e),
                energy_saved=_saved(e, e_boot, *ref[1]),
                compute_saved=_saved(f, f_boot, *ref[2]) if compute_known else None,
                cost_saved=_saved(cost, cost_boot, *ref[3]),
                shares=[
                    Share(cand.name, float(routed[j]))
                    for j, cand in enumerate(study.candidates)
                    if routed[j] > 0
                ],
            )
        )
    extra_sums = None
    if sums is not None and extra_columns is not None:
        start = 4 * m + 4 * len(own)
        extra_sums = sums[:, start:-1]
    return outcomes, extra_sums


def _finite(x: np.ndarray) -> np.ndarray:
    """x with NaN as 0 (a copy only when there is one: these are items × M)."""
    return x if np.isfinite(x).all() else np.nan_to_num(x)


def _saved(
    total: float, boot: np.ndarray | None, ref_total: float, ref_boot: np.ndarray | None
) -> Estimate:
    """1 − policy total / reference total, with its bootstrap interval."""
    point = 1 - total / ref_total if ref_total else None
    stat = None if boot is None or ref_boot is None else 1 - ratio(boot, ref_boot)
    return estimate(point, stat)


# --- coverage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubsetCoverage:
    """The share of items at least one model of the subset answers correctly."""

    models: list[str]
    coverage: float


@dataclass(frozen=True)
class CoverageReport:
    """Coverage of the measured runs: alone, the best subset of each size, and all of them.

    `all_subsets` lists every subset when there are at most 10 runs (2^10 − 1 rows); with more
    it is left empty and only the best subset of each size is kept.
    """

    n_items: int
    models: list[str]
    singles: list[SubsetCoverage]
    best_by_size: list[SubsetCoverage]
    everything: Estimate
    all_subsets: list[SubsetCoverage]


def covered(study: Study) -> np.ndarray:
    """Per item, the best share of correct attempts among the measured runs (whether some run
    answers it correctly, for items asked once): the column coverage is the mean of."""
    return study.correct[:, study.measured].max(axis=1) if study.n_items else np.zeros(0)


def coverage_report(
    study: Study, covered_sums: np.ndarray | None, counts: np.ndarray | None = None
) -> CoverageReport:
    """Coverage of every subset of the measured runs (an external profile is left out: it was
    not measured, and one assumed correct would cover everything). `covered_sums` are the
    bootstrap sums of `covered(study)`, drawn with the report's other columns, and `counts`
    each resample's count of items (default: the fixed n, exact for multinomial weights)."""
    measured = study.measured
    names = [study.candidates[j].name for j in measured]
    correct = study.correct[:, measured]
    m = len(measured)
    if m > MAX_SUBSET_MODELS:
        raise PerwattError(
            f"coverage of every subset handles up to {MAX_SUBSET_MODELS} runs, not {m}"
        )
    cov = subset_coverage(correct)

    def members(mask: int) -> list[str]:
        return [names[b] for b in range(m) if mask >> b & 1]

    best = [SubsetCoverage(members(mask), value) for mask, value in best_subsets(cov)]
    boot = None
    if covered_sums is not None and study.n_items:
        boot = ratio(covered_sums, counts) if counts is not None else covered_sums / study.n_items
    all_subsets = (
        [SubsetCoverage(members(s), float(cov[s])) for s in range(1, 1 << m)] if m <= 10 else []
    )
    return CoverageReport(
        n_items=study.n_items,
        models=names,
        singles=[SubsetCoverage([names[b]], float(cov[1 << b])) for b in range(m)],
        best_by_size=best,
        everything=estimate(float(cov[-1]) if study.n_items else None, boot),
        all_subsets=all_subsets,
    )


# --- curves ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    """One operating point: the share of items sent to the reference and what it delivers."""

    reference_share: float
    accuracy: float
    energy_j: float
    flops: float | None
    cost_usd: float


@dataclass(frozen=True)
class Curve:
    """Accuracy against reference share (RouteLLM's view) and against joules (perwatt's)."""

    name: str
    description: str
    points: list[CurvePoint]


@dataclass(frozen=True)
class FrontierPoint:
    """Oracle routing restricted to a subset of the measured runs (plus the reference)."""

    models: list[str]
    accuracy: float
    energy_j: float


def _local_fallback(study: Study) -> tuple[np.ndarray, np.ndarray]:
    """Per item, where an item stays if not sent to the reference: the least-energy local model
    that answers correctly, else the least-energy local model. Returns (choice, has_local)."""
    local = [j for j in range(len(study.candidates)) if j != study.reference]
    if not local:
        return np.full(study.n_items, study.reference), np.zeros(study.n_items, bool)
    en = study.energy_j[:, local]
    pick = oracle_choice(study.correct[:, local], en, -1)
    pick = np.where(pick < 0, np.argmin(en, axis=1), pick)
    return np.asarray(local)[pick], np.ones(study.n_items, bool)


def _point(study: Study, choice: np.ndarray) -> CurvePoint:
    idx = np.arange(study.n_items)
    picked = [x[idx, choice] for x in (study.correct, study.energy_j, study.flops, study.cost_usd)]
    return _point_of(study, choice, *picked)


def _point_of(
    study: Study,
    choice: np.ndarray,
    correct: np.ndarray,
    energy: np.ndarray,
    flops: np.ndarray,
    cost: np.ndarray,
) -> CurvePoint:
    """The operating point of `choice`, from each item's figures under it."""
    n = max(study.n_items, 1)
    return CurvePoint(
        reference_share=float((choice == study.reference).sum() / n),
        accuracy=float(correct.sum() / n),
        energy_j=float(energy.sum()),
        flops=float(flops.sum()) if np.isfinite(flops).all() else None,
        cost_usd=float(cost.sum()),
    )


def ranked_curve(study: Study, priority: np.ndarray, name: str, description: str) -> Curve:
    """Send the items with the highest `priority` to the reference, the rest to the local
    fallback, at reference shares 0, 5%, …, 100%.

    In priority order, a point's figure is the reference's over the first k items plus the
    fallback's over the rest: two running sums, read at each share's k."""
    local, _ = _local_fallback(study)
    order = np.argsort(-priority, kind="stable")
    n = study.n_items
    xs = (study.correct, study.energy_j, study.flops, study.cost_usd)
    # Per figure, in priority order: running sums of the reference's and the fallback's
    # values (NaN as 0) and running counts of NaN (unknown FLOPs), each with a leading 0.
    running = []
    for x in xs:
        at_ref, at_local = x[order, study.reference], x[order, local[order]]
        running.append([
            np.concatenate([[0.0], np.cumsum(v)]) for v in (
                np.nan_to_num(at_ref), np.nan_to_num(at_local),
                np.isnan(at_ref).astype(float), np.isnan(at_local).astype(float))
        ])  # fmt: skip
    to_ref = np.concatenate([[0], np.cumsum(local[order] == study.reference)])
    points = []
    for s in CURVE_SHARES:
        k = round(s * n)
        totals, unknown = [], []
        for ref_sum, local_sum, ref_nan, local_nan in running:
            totals.append(float(ref_sum[k] + (local_sum[n] - local_sum[k])))
            unknown.append(bool(ref_nan[k] + (local_nan[n] - local_nan[k]) > 0))
        correct, energy, flops, cost = totals
        points.append(
            CurvePoint(
                reference_share=float((k + to_ref[n] - to_ref[k]) / max(n, 1)),
                accuracy=correct / max(n, 1),
                energy_j=energy,
                flops=None if unknown[2] else flops,
                cost_usd=cost,
            )
        )
    return Curve(name, description, points)


def oracle_curve(study: Study) -> Curve:
    """The oracle's curve: items the local models miss and the reference answers go first
    (cheapest extra joules first), then items where sending changes nothing, then the rest."""
    local, _ = _local_fallback(study)
    idx = np.arange(study.n_items)
    gain = study.correct[:, study.reference] - study.correct[idx, local]
    extra = study.energy_j[:, study.reference] - study.energy_j[idx, local]
    scale = np.abs(extra).max() + 1.0 if study.n_items else 1.0
    # Gain dominates; among equal gains, the smallest extra energy goes first.
    priority = gain - extra / (2 * scale)
    return ranked_curve(
        study,
        priority,
        "oracle",
        "items the local models miss and the reference answers go to the reference first",
    )


def random_curve(study: Study) -> Curve:
    """A router that sends a random share s of items to the reference and the rest to the most
    accurate other candidate (its expectation): the baseline any router must beat."""
    others = [j for j in range(len(study.candidates)) if j != study.reference]
    if others:
        best = max(others, key=lambda j: (study.correct[:, j].mean(), -study.energy_j[:, j].sum()))
    else:
        best = study.reference
    lo = _point(study, np.full(study.n_items, best))
    hi = _point(study, np.full(study.n_items, study.reference))
    points = [
        CurvePoint(
            reference_share=s,
            accuracy=(1 - s) * lo.accuracy + s * hi.accuracy,
            energy_j=(1 - s) * lo.energy_j + s * hi.energy_j,
            flops=None
            if lo.flops is None or hi.flops is None
            else (1 - s) * lo.flops + s * hi.flops,
            cost_usd=(1 - s) * lo.cost_usd + s * hi.cost_usd,
        )
        for s in CURVE_SHARES
    ]
    name = study.candidates[best].name
    return Curve(
        "random",
        f"a random share of items goes to the reference, the rest to {name} (expectation)",
        points,
    )


def frontier(study: Study) -> list[FrontierPoint]:
    """Accuracy against joules: oracle routing over each subset of the candidates, keeping the
    Pareto-optimal points (no other point is both at least as accurate and cheaper).

    Within a subset each item goes to its least-energy member that answers correctly; when none
    does, to the reference if it is in the subset, else to the least-energy member. Up to 12
    candidates (4,095 subsets).
    """
    m = len(study.candidates)
    if m > 12:
        return []
    idx = np.arange(study.n_items)
    points = []
    for size in range(1, m + 1):
        for subset in combinations(range(m), size):
            pool = list(subset)
            corr = study.correct[:, pool]
            en = study.energy_j[:, pool]
            fallback = pool.index(study.reference) if study.reference in pool else -1
            choice = oracle_choice(corr, en, fallback)
            choice = np.where(choice < 0, np.argmin(en, axis=1), choice)
            points.append(
                FrontierPoint(
                    models=[study.candidates[j].name for j in pool],
                    accuracy=float(corr[idx, choice].mean()) if study.n_items else 0.0,
                    energy_j=float(en[idx, choice].sum()),
                )
            )
    return [points[i] for i in pareto_frontier([(p.energy_j, p.accuracy) for p in points])]


# --- the whole report -------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingReport:
    """Everything `perwatt route` prints and writes."""

    candidates: list[Candidate]
    reference: str
    reference_kind: str
    n_items: int
    tokens_basis: str
    usd_per_kwh: float
    usd_per_kwh_default: bool
    mixed_energy_labels: bool
    bootstrap: str
    resamples: int
    seed: int
    misroute: str  # where an α-router's wrong choices go: "reference" or "random"
    coverage: CoverageReport
    outcomes: list[Outcome]
    curves: list[Curve]
    frontier: list[FrontierPoint]
    left_out: list[LeftOut]
    notes: list[str]


def route_report(
    study: Study,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    extra_policies: Sequence[tuple[str, np.ndarray]] = (),
    extra_curves: Sequence[Curve] = (),
    resamples: int = 1000,
    seed: int = 0,
    misroute: str = "reference",
) -> RoutingReport:
    """Coverage, the oracle, α-accurate routers, always-each-candidate, any extra policies (the
    learned router) and the curves, all against always-reference, from one paired bootstrap."""
    if resamples < 1:
        raise PerwattError("--resamples must be at least 1")
    policies: list[tuple[str, np.ndarray | Mixture]] = [
        (f"always {c.name}", always_policy(study, j)) for j, c in enumerate(study.candidates)
    ]
    oracle = oracle_policy(study)
    policies.append(("oracle", oracle))
    for a in alphas:
        policies.append((f"α={a:g} router", alpha_policy(study, a, misroute, oracle)))
    policies.extend(extra_policies)
    outcomes, covered_sums = evaluate(
        study,
        policies,
        resamples=resamples,
        seed=seed,
        extra_columns=np.column_stack([covered(study), np.ones(study.n_items)]),
    )
    ref = study.candidates[study.reference]
    return RoutingReport(
        candidates=study.candidates,
        reference=ref.name,
        reference_kind=ref.kind,
        n_items=study.n_items,
        tokens_basis=study.tokens_basis,
        usd_per_kwh=study.usd_per_kwh,
        usd_per_kwh_default=study.usd_per_kwh_default,
        mixed_energy_labels=study.mixed_labels,
        bootstrap=bootstrap_method(study.n_items),
        resamples=resamples,
        seed=seed,
        misroute=misroute,
        coverage=coverage_report(
            study,
            None if covered_sums is None else covered_sums[:, 0],
            None if covered_sums is None else covered_sums[:, 1],
        ),
        outcomes=outcomes,
        curves=[oracle_curve(study), random_curve(study), *extra_curves],
        frontier=frontier(study),
        left_out=study.left_out,
        notes=study.notes,
    )
