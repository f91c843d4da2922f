"""ClockMap: device times put on the host clock with the estimate in force, never stepping."""

from __future__ import annotations

import csv
import io

import pytest

from rpi_logger.io.clock_map import (
    TIME_SYNC_COLUMNS,
    ClockMap,
    ClockMapError,
    OffsetEstimate,
    time_sync_row,
)

S = 1_000_000_000
OFFSET = 3_217_345_678


def test_no_estimate_no_mapping() -> None:
    cmap = ClockMap()
    assert not cmap.ready
    with pytest.raises(ClockMapError):
        cmap.to_host(123)


def test_one_estimate_maps_every_time_with_its_offset() -> None:
    cmap = ClockMap()
    cmap.add(OffsetEstimate(10 * S, OFFSET, roundtrip_ns=200_000))
    for t_host in (0, 10 * S, 99 * S + 7):
        assert cmap.to_host(t_host + OFFSET) == t_host


def test_a_round_trip_above_the_threshold_is_rejected_and_kept() -> None:
    cmap = ClockMap(max_roundtrip_ns=5_000_000)
    good = cmap.add(OffsetEstimate(1 * S, OFFSET, roundtrip_ns=1_000_000))
    bad = cmap.add(OffsetEstimate(2 * S, OFFSET + 50_000_000, roundtrip_ns=9_000_000))
    assert good.accepted and not bad.accepted
    assert cmap.estimates == [good, bad]
    assert cmap.current == good
    assert cmap.to_host(5 * S + OFFSET) == 5 * S  # the rejected one is never used


def test_live_estimate_is_slewed_in_from_the_moment_it_arrives() -> None:
    cmap = ClockMap(min_slew_ns=1 * S, max_slew_rate=0.01)
    cmap.add(OffsetEstimate(0, OFFSET))
    before = cmap.to_host(10 * S + OFFSET)  # a row mapped before the new estimate
    cmap.add(OffsetEstimate(10 * S, OFFSET + 2_000_000))  # the device clock moved 2 ms
    assert cmap.to_host(10 * S + OFFSET) == before  # rows already written keep their time
    assert cmap.offset_at(10 * S + OFFSET) == OFFSET
    # The change is slewed over max(1 s, 2 ms / 1 %) = 1 s of device time, then holds.
    # (from the estimate's own device time, 10 s + OFFSET + 2 ms)
    half = 10 * S + OFFSET + 2_000_000 + S // 2
    assert cmap.offset_at(half) == OFFSET + 1_000_000
    assert cmap.offset_at(30 * S) == OFFSET + 2_000_000


def test_live_mapping_never_steps_backwards() -> None:
    cmap = ClockMap(min_slew_ns=S // 10)
    cmap.add(OffsetEstimate(0, OFFSET))
    last = None
    for k in range(1, 2000):
        t_dev = k * 5_000_000 + OFFSET
        if k % 200 == 0:  # estimates jumping by +-30 ms
            cmap.add(
                OffsetEstimate(k * 5_000_000, OFFSET + (30_000_000 if k % 400 else -30_000_000))
            )
        host = cmap.to_host(t_dev)
        if last is not None:
            assert host > last
        last = host


def test_offline_interpolates_between_estimates() -> None:
    cmap = ClockMap(live=False)
    cmap.add(OffsetEstimate(10 * S, OFFSET + 1_000_000))
    cmap.add(OffsetEstimate(0, OFFSET))  # order of arrival does not matter offline
    assert cmap.offset_at(OFFSET + 5 * S) == pytest.approx(OFFSET + 500_000, abs=1000)
    assert cmap.offset_at(-5 * S) == OFFSET  # before the first: the first holds
    assert cmap.offset_at(50 * S) == OFFSET + 1_000_000  # after the last: the last holds


def test_time_sync_rows_have_the_spec_columns() -> None:
    est = OffsetEstimate(
        5 * S, OFFSET, std_ns=300_000, roundtrip_ns=400_000, mean_ns=OFFSET, median_ns=OFFSET
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TIME_SYNC_COLUMNS)
    writer.writerow(time_sync_row(est, 6 * S))
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    for name in ("t_mono_ns", "t_wall_unix", "offset_ns", "std_ns", "roundtrip_ns", "accepted"):
        assert row[name] != ""
    assert int(row["t_mono_ns"]) == 6 * S and int(row["measured_mono_ns"]) == 5 * S
    assert int(row["offset_ns"]) == OFFSET and row["accepted"] == "1"
