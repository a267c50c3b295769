"""Telemetry coverage: how much of each request the energy samples cover."""

from __future__ import annotations

import pytest

from perwatt.energy.timeline import PowerTimeline, TimelineRow


def test_coverage_is_the_share_of_each_request_inside_sampled_stretches():

    # Samples every 0.1 s over [0, 1], then nothing until a last sample at 3 s (a 2 s gap).
    times = [k / 10 for k in range(11)] + [3.0]
    rows = [TimelineRow(t, "cpu", 5.0 * t, None, "estimated:cputime") for t in times]
    timeline = PowerTimeline.from_rows(rows)
    share = timeline.coverage([(0.2, 0.6), (0.5, 1.5), (2.0, 2.5), (0.3, 0.3), (3.0, 4.0)],
                              max_gap_s=0.5)  # fmt: skip
    assert share.tolist() == pytest.approx([1.0, 0.5, 0.0, 1.0, 0.0])
    assert PowerTimeline().coverage([(0.0, 1.0)], max_gap_s=1.0).tolist() == [0.0]
