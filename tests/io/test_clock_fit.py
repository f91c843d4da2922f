"""The lower-envelope fit recovers a device clock's offset and drift from late lines."""

from __future__ import annotations

import random

import pytest

from rpi_logger.io.clock_fit import DriftFit
from rpi_logger.io.clock_map import TIME_SYNC_COLUMNS, time_sync_row

OFFSET = 7_345_678_912
PPM = 100.0


def device_ns(host: int) -> int:
    return round((host + OFFSET) * (1 + PPM * 1e-6))


def test_offset_and_drift_recovered_from_lines_that_arrive_late() -> None:
    rng = random.Random(3)
    fit = DriftFit()
    start = 1_000_000_000_000
    hosts = [start + k * 4_000_000_000 for k in range(12)]  # a DRT's onsets over 45 s
    for h in hosts:
        fit.add(device_ns(h), h + int(rng.uniform(0.5, 3.0) * 1e6))
    worst = max(abs(fit.to_host(device_ns(h)) - h) for h in hosts)
    assert worst < 2_000_000  # within 2 ms (the DRT target), though every line was 0.5-3 ms late
    assert fit.drift_ppm == pytest.approx(PPM, abs=30)
    # Arrival times alone (no mapping) are off by the latency; an offset alone by the drift.
    one = DriftFit()
    one.add(device_ns(hosts[0]), hosts[0])
    assert abs(one.to_host(device_ns(hosts[-1])) - hosts[-1]) > 4_000_000


def test_refit_as_pairs_arrive_and_a_time_sync_row() -> None:
    fit = DriftFit()
    with pytest.raises(RuntimeError):
        fit.to_host(0)
    fit.add(device_ns(10**12), 10**12 + 2_000_000)
    assert abs(fit.to_host(device_ns(10**12)) - 10**12) == 2_000_000
    fit.add(device_ns(10**12 + 10**9), 10**12 + 10**9 + 500_000)
    fit.add(device_ns(10**12 + 2 * 10**9), 10**12 + 2 * 10**9 + 700_000)
    est = fit.estimate(10**12 + 10**9)
    assert est.measurements == 3
    assert est.offset_ns == pytest.approx(device_ns(10**12 + 10**9) - (10**12 + 10**9), abs=2e6)
    row = dict(zip(TIME_SYNC_COLUMNS, time_sync_row(est), strict=True))
    assert row["t_mono_ns"] == 10**12 + 10**9 and row["accepted"] == 1


def test_a_point_repeated_or_out_of_order_is_harmless() -> None:
    fit = DriftFit()
    for h in (3 * 10**9, 10**9, 10**9, 2 * 10**9):
        fit.add(device_ns(h), h + 1_000_000)
    assert abs(fit.to_host(device_ns(2 * 10**9)) - 2 * 10**9) <= 1_000_001


def test_no_drift_from_points_close_together() -> None:
    """An onset and its press 250 ms apart, 3 ms and 0.5 ms late, say nothing about drift."""
    fit = DriftFit()
    fit.add(device_ns(10**12), 10**12 + 3_000_000)
    fit.add(device_ns(10**12 + 250_000_000), 10**12 + 250_000_000 + 500_000)
    assert fit.drift_ppm == 0
    later = 10**12 + 10 * 10**9
    assert abs(fit.to_host(device_ns(later)) - later) < 2_000_000
