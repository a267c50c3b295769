import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perwatt.energy import DomainSeries, PowerTimeline, attribute


def constant_power(watts: float, t_end: float, step: float = 1.0) -> DomainSeries:
    t = np.arange(0.0, t_end + step / 2, step)
    return DomainSeries(t, watts * t, "test")


def reference(series, intervals, idle_w=0.0, weights=None, splits=None):
    """Slice-by-slice attribution in plain Python: the definition, slowly. With `splits`, also
    each request's energy in the slices before its split time (prefill) and after (decode)."""
    t, e = list(series.t), list(series.energy_j)
    lo, hi = t[0], t[-1]
    spans = [(min(max(a, lo), hi), min(max(b, lo), hi)) for a, b in intervals]
    w = [1.0] * len(spans) if weights is None else [float(x) for x in weights]
    cut = [
        d if splits is None or math.isnan(x) else min(max(x, s), d)
        for (s, d), x in zip(spans, splits or [math.nan] * len(spans), strict=True)
    ]
    points = sorted(set(t) | {p for span in spans for p in span} | set(cut))
    gross = [0.0] * len(spans)
    prefill = [0.0] * len(spans)
    idle = [0.0] * len(spans)
    unattributed = 0.0
    for a, b in itertools.pairwise(points):
        energy = float(np.interp(b, t, e) - np.interp(a, t, e))
        active = [i for i, (s, d) in enumerate(spans) if s <= a and b <= d]
        if not active:
            unattributed += energy
            continue
        total_w = sum(w[i] for i in active)
        for i in active:
            share = w[i] / total_w if total_w > 0 else 1.0 / len(active)
            gross[i] += energy * share
            if b <= cut[i]:
                prefill[i] += energy * share
            idle[i] += idle_w * (b - a) * share
    if splits is not None:
        return np.array(gross), np.array(prefill), np.array(gross) - np.array(prefill)
    return np.array(gross), np.array(gross) - np.array(idle), unattributed


# -- hand-worked cases ------------------------------------------------------------------------


def test_two_overlapping_requests_and_the_gap_between():
    # 10 W from t=0 to t=10. A runs 1–5, B runs 3–7: each alone for 2 s, together 3–5.
    result = attribute(constant_power(10.0, 10.0), [(1.0, 5.0), (3.0, 7.0)])
    # A: 2 s alone (20 J) + half of 2 s shared (10 J) = 30 J; B the same by symmetry.
    assert result.gross_j == pytest.approx([30.0, 30.0])
    # Nobody active over 0–1 and 7–10: 4 s × 10 W.
    assert result.unattributed_j == pytest.approx(40.0)
    assert result.total_j == pytest.approx(100.0)
    assert result.active_j == pytest.approx(60.0)
    assert result.active_s == pytest.approx(6.0)
    assert result.window_s == pytest.approx(6.0)
    assert result.clipped == 0


def test_requests_cut_inside_sample_intervals_follow_power_changes():
    # 5 W for 0–4 s, then 20 W for 4–10 s, sampled only at 0, 4, 10. A request over 2–6 gets
    # 2 s × 5 W + 2 s × 20 W; one over 5–5.5 gets 0.5 s × 20 W.
    series = DomainSeries(np.array([0.0, 4.0, 10.0]), np.array([0.0, 20.0, 140.0]), "test")
    result = attribute(series, [(2.0, 6.0), (5.0, 5.5)])
    # 5–5.5 is shared: 10 J of it split in two.
    assert result.gross_j == pytest.approx([10.0 + 40.0 - 5.0, 5.0])
    assert result.unattributed_j == pytest.approx(10.0 + 80.0)


def test_net_energy_removes_the_idle_share_by_the_same_rule():
    result = attribute(constant_power(10.0, 10.0), [(1.0, 5.0), (3.0, 7.0)], idle_power_w=4.0)
    # Idle share of A: 2 s alone × 4 W + 2 s shared × 4 W / 2 = 12 J → net 30 - 12 = 18 J.
    assert result.net_j == pytest.approx([18.0, 18.0])
    assert result.idle_j == pytest.approx(4.0 * 6.0)  # idle power × time with a request active


def test_net_energy_goes_negative_when_idle_exceeds_the_draw():
    result = attribute(constant_power(2.0, 4.0), [(0.0, 4.0)], idle_power_w=3.0)
    assert result.net_j == pytest.approx([-4.0])  # reported as is, not clamped


def test_token_weights_split_each_shared_slice():
    # 10 W over 0–4. A (3 tokens) over 0–4, B (1 token) over 2–4: A alone 0–2 gets 20 J, then
    # 3:1 of the 20 J in 2–4.
    result = attribute(constant_power(10.0, 4.0), [(0.0, 4.0), (2.0, 4.0)], weights=[3, 1])
    assert result.gross_j == pytest.approx([35.0, 5.0])


def test_zero_weights_share_equally_when_alone_and_get_nothing_beside_weighted_ones():
    series = constant_power(10.0, 4.0)
    both_zero = attribute(series, [(0.0, 4.0), (0.0, 4.0)], weights=[0, 0])
    assert both_zero.gross_j == pytest.approx([20.0, 20.0])
    assert both_zero.unattributed_j == pytest.approx(0.0)
    mixed = attribute(series, [(0.0, 2.0), (0.0, 4.0)], weights=[0, 5])
    assert mixed.gross_j == pytest.approx([0.0, 40.0])


def test_zero_length_and_out_of_range_requests():
    series = constant_power(5.0, 10.0)
    result = attribute(series, [(2.0, 2.0), (-3.0, 1.0), (9.0, 15.0), (20.0, 30.0)])
    assert result.gross_j[0] == 0.0 and result.net_j[0] == 0.0
    assert result.gross_j[1:] == pytest.approx([5.0, 5.0, 0.0])
    assert result.clipped_mask.tolist() == [False, True, True, True]
    assert result.clipped == 3
    assert result.window_s == pytest.approx(33.0)


def test_a_timeline_of_several_domains_is_attributed_as_their_sum():
    cpu = constant_power(10.0, 10.0)
    gpu = DomainSeries(np.array([0.5, 5.5, 9.5]), np.array([100.0, 400.0, 500.0]), "gpu")
    timeline = PowerTimeline({"cpu": cpu, "gpu": gpu})
    result = attribute(timeline, [(2.0, 4.0)])
    # cpu 20 J + gpu 2 s × 60 W.
    assert result.gross_j == pytest.approx([20.0 + 120.0])
    assert result.total_j == pytest.approx(100.0 + 400.0)


def test_no_requests_and_no_samples():
    empty = attribute(constant_power(3.0, 2.0), [])
    assert empty.gross_j.shape == (0,)
    assert empty.unattributed_j == pytest.approx(empty.total_j) == pytest.approx(6.0)
    single = DomainSeries(np.array([1.0]), np.array([7.0]), "test")
    unsampled = attribute(single, [(0.0, 2.0)])
    assert unsampled.gross_j.tolist() == [0.0] and unsampled.total_j == 0.0
    assert unsampled.clipped == 1


def test_bad_input_is_refused():
    series = constant_power(1.0, 4.0)
    with pytest.raises(ValueError, match="ends before it starts"):
        attribute(series, [(2.0, 1.0)])
    with pytest.raises(ValueError, match="finite"):
        attribute(series, [(1.0, math.nan)])
    with pytest.raises(ValueError, match="weights"):
        attribute(series, [(1.0, 2.0)], weights=[1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        attribute(series, [(1.0, 2.0)], weights=[-1])


def test_energy_is_split_at_the_first_token_into_prefill_and_decode():
    # 5 W for 0–4 s, then 20 W for 4–10 s. A: sent 2, first token 5, done 6 → prefill 2 s × 5 W
    # + 0.5 s × 20 W + half of 0.5 s × 20 W (shared with B over 4.5–5); decode 1 s × 20 W.
    # B: sent 4.5, no first token (it failed), done 5 → all of it prefill.
    series = DomainSeries(np.array([0.0, 4.0, 10.0]), np.array([0.0, 20.0, 140.0]), "test")
    result = attribute(series, [(2.0, 6.0), (4.5, 5.0)], splits=[5.0, math.nan])
    assert result.prefill_j == pytest.approx([10.0 + 10.0 + 5.0, 5.0])
    assert result.decode_j == pytest.approx([20.0, 0.0])
    assert (result.prefill_j + result.decode_j == result.gross_j).all()
    # The split changes no request's total.
    plain = attribute(series, [(2.0, 6.0), (4.5, 5.0)])
    assert plain.prefill_j is None and plain.decode_j is None
    assert result.gross_j == pytest.approx(plain.gross_j, rel=1e-15)


def test_a_first_token_outside_the_request_is_moved_to_its_nearer_end():
    series = constant_power(10.0, 10.0)
    result = attribute(series, [(1.0, 3.0), (4.0, 6.0)], splits=[0.5, 9.0])
    assert result.prefill_j == pytest.approx([0.0, 20.0])
    assert result.decode_j == pytest.approx([20.0, 0.0])
    with pytest.raises(ValueError, match="split times"):
        attribute(series, [(1.0, 3.0)], splits=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        attribute(series, [(1.0, 3.0)], splits=[math.inf])
    unsampled = attribute(DomainSeries(np.array([1.0]), np.array([7.0]), "t"), [(0.0, 2.0)],
                          splits=[1.0])  # fmt: skip
    assert unsampled.prefill_j.tolist() == [0.0] and unsampled.decode_j.tolist() == [0.0]


# -- properties over random timelines and request sets ----------------------------------------


@st.composite
def timelines_and_requests(draw):
    n_samples = draw(st.integers(2, 40))
    steps = draw(st.lists(st.floats(1e-3, 5.0), min_size=n_samples - 1, max_size=n_samples - 1))
    increments = draw(
        st.lists(st.floats(0.0, 500.0), min_size=n_samples - 1, max_size=n_samples - 1)
    )
    t = np.concatenate([[draw(st.floats(-10, 10))], steps]).cumsum()
    e = np.concatenate([[draw(st.floats(0, 1e6))], increments]).cumsum()
    lo, hi = float(t[0]) - 5, float(t[-1]) + 5
    # Starts anywhere (including outside the sampled range); some requests start exactly on a
    # sample time or on another request's end, and some are nested or zero-length.
    times = st.one_of(st.floats(lo, hi), st.sampled_from([float(x) for x in t]))
    starts = draw(st.lists(times, max_size=25))
    durations = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(0.0, 20.0)),
            min_size=len(starts),
            max_size=len(starts),
        )
    )
    requests = [(s, s + d) for s, d in zip(starts, durations, strict=True)]
    if requests and draw(st.booleans()):  # one nested inside another
        a, b = requests[0]
        requests.append((a + (b - a) / 3, b - (b - a) / 3))
    kind = draw(st.sampled_from(["none", "tokens", "real"]))
    # Real weights within six orders of magnitude (or 0): far smaller weights are rounded by
    # attribute's fixed-point weights (documented there), which the reference does not do.
    real = st.one_of(st.just(0.0), st.floats(1e-3, 1e3))
    weight = {"none": None, "tokens": st.integers(0, 5000), "real": real}[kind]
    weights = (
        None
        if weight is None
        else draw(st.lists(weight, min_size=len(requests), max_size=len(requests)))
    )
    return DomainSeries(t, e, "test"), requests, weights


@settings(max_examples=300, deadline=None)
@given(timelines_and_requests(), st.floats(0.0, 50.0))
def test_conservation_and_agreement_with_the_slice_by_slice_definition(case, idle_w):
    series, requests, weights = case
    result = attribute(series, requests, idle_power_w=idle_w, weights=weights)
    total = float(series.energy_j[-1] - series.energy_j[0])
    tol = 1e-9 * max(total, 1.0)
    assert result.total_j == pytest.approx(total, rel=1e-12)
    # Conservation: every joule is either some request's or unattributed.
    assert abs(float(result.gross_j.sum()) + result.unattributed_j - total) <= tol
    assert abs(result.active_j + result.unattributed_j - total) <= tol
    # Non-negative increments give non-negative shares.
    assert (result.gross_j >= -tol).all() and result.unattributed_j >= -tol
    # Zero-length requests get nothing, exactly.
    for (a, b), gross in zip(requests, result.gross_j, strict=True):
        if a == b:
            assert gross == 0.0
    # The idle share summed over requests is idle power × the time with a request active.
    assert abs(result.idle_j - idle_w * result.active_s) <= 1e-9 * max(idle_w * 100, 1.0)
    # And each request's figures equal the definition computed slice by slice.
    gross, net, unattributed = reference(series, requests, idle_w, weights)
    scale = max(total, 1.0)
    assert np.allclose(result.gross_j, gross, rtol=1e-7, atol=1e-9 * scale)
    assert np.allclose(result.net_j, net, rtol=1e-7, atol=1e-9 * max(scale, idle_w * 100))
    assert unattributed == pytest.approx(result.unattributed_j, rel=1e-9, abs=tol)


@settings(max_examples=100, deadline=None)
@given(timelines_and_requests())
def test_weights_scaled_together_change_nothing(case):
    series, requests, weights = case
    if weights is None:
        weights = [1.0] * len(requests)
    a = attribute(series, requests, weights=weights)
    b = attribute(series, requests, weights=[3.5 * w for w in weights])
    scale = max(a.total_j, 1.0)
    assert np.allclose(a.gross_j, b.gross_j, rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=300, deadline=None)
@given(timelines_and_requests(), st.data())
def test_prefill_plus_decode_is_the_request_energy_exactly(case, data):
    series, requests, weights = case
    # Each request's first token somewhere inside it, at one of its ends, outside it, or none.
    where = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, -0.5, 1.5, math.nan]))
    fractions = data.draw(st.lists(where, min_size=len(requests), max_size=len(requests)))
    splits = [a + f * (b - a) for (a, b), f in zip(requests, fractions, strict=True)]
    result = attribute(series, requests, weights=weights, splits=splits)
    # Exact conservation, bit for bit: the phases add up to the request's energy.
    assert (result.prefill_j + result.decode_j == result.gross_j).all()
    total = float(series.energy_j[-1] - series.energy_j[0])
    tol = 1e-9 * max(total, 1.0)
    assert abs(float(result.gross_j.sum()) + result.unattributed_j - total) <= tol
    assert (result.prefill_j >= -tol).all() and (result.decode_j >= -tol).all()
    # No first token: all of it prefill.
    for f, decode in zip(fractions, result.decode_j, strict=True):
        if math.isnan(f):
            assert decode == 0.0
    # Each phase is the definition computed slice by slice; the total is unchanged by the split.
    _, prefill, decode = reference(series, requests, weights=weights, splits=splits)
    assert np.allclose(result.prefill_j, prefill, rtol=1e-7, atol=tol)
    assert np.allclose(result.decode_j, decode, rtol=1e-7, atol=tol)
    plain = attribute(series, requests, weights=weights)
    assert np.allclose(result.gross_j, plain.gross_j, rtol=1e-9, atol=tol)


def test_100k_requests_over_100k_samples_well_under_a_second():
    rng = np.random.default_rng(7)
    n = 100_000
    t = np.cumsum(rng.uniform(0.01, 0.09, n))
    series = DomainSeries(t, np.cumsum(rng.uniform(0.0, 5.0, n)), "test")
    starts = rng.uniform(t[0] - 10, t[-1] + 10, n)
    intervals = np.column_stack([starts, starts + rng.exponential(5.0, n)])
    weights = rng.integers(0, 500, n)
    attribute(series, intervals[:1000])  # warm up numpy
    began = time.perf_counter()
    firsts = intervals[:, 0] + rng.uniform(0.0, 1.0, n) * (intervals[:, 1] - intervals[:, 0])
    result = attribute(series, intervals, idle_power_w=3.0, weights=weights, splits=firsts)
    elapsed = time.perf_counter() - began
    total = result.total_j
    assert abs(result.gross_j.sum() + result.unattributed_j - total) <= 1e-9 * total
    assert elapsed < 1.0, f"{elapsed:.3f} s"


def test_weights_nine_orders_of_magnitude_apart_keep_their_precision():
    # Found by hypothesis: a tiny-weight request early on made the running per-weight sum large
    # next to a heavy request's share later, and a plain cumulative-sum difference lost 2e-7.
    t = np.array([0.0, 4.75, 10.5, 11.5, 62.5, 66.0])
    series = DomainSeries(t, np.array([0.0, 0.0, 0.0, 1.0, 13.0, 14.0]), "test")
    requests = [(65.6, 66.6), (4.75, 11.75), (0.0, 0.0)]
    result = attribute(series, requests, weights=[1.0, 3.485953162114521e-09, 0.0])
    assert result.gross_j[0] == pytest.approx((66.0 - 65.6) / 3.5, rel=1e-12)
    # 1 J over 10.5–11.5, then 0.25 s of the 12 J spread over 11.5–62.5.
    assert result.gross_j[1] == pytest.approx(1.0 + 12.0 * 0.25 / 51.0, rel=1e-12)
    assert abs(result.gross_j.sum() + result.unattributed_j - 14.0) <= 1e-12
