"""Offline: how close the mapped sDRT/wDRT onsets come to the simulator's host onsets (a script,
not a test). Each run drives the simulator's own schedule without a pty or real time: the lines'
due times are their arrivals (an ideal host that reads at once), the start instant random.
The rows are mapped as the module maps them: waiting until the fit has 16 pairs, then as they
come, the rest at the stop.

    .venv/bin/python -m tests.modules.drt.onset_accuracy [runs] [seconds] [sDRT|wDRT]
"""

from __future__ import annotations

import heapq
import random
import sys

from rpi_logger.modules.drt.sdrt import SdrtTracker
from rpi_logger.modules.drt.wdrt import WdrtTracker
from rpi_logger.simulation.serial.sdrt import SimulatedSDRT
from rpi_logger.simulation.serial.wdrt import SimulatedWDRT

S = 1_000_000_000
SETTLE = 16


def one_run(seed: int, seconds: float, kind: str) -> list[int]:
    """The onset errors (ns) of one trial."""
    rng = random.Random(seed)
    sim = SimulatedWDRT(seed=seed) if kind == "wDRT" else SimulatedSDRT(seed=seed)
    tracker = WdrtTracker() if kind == "wDRT" else SdrtTracker()
    start = 10**12 + rng.randrange(S)
    tracker.line(
        "cfg>ONTM:1000,ISIL:3000,ISIH:5000,DBNC:100,SPCT:100"
        if kind == "wDRT"
        else "cfg>lowerISI:3000,upperISI:5000,stimDur:1000,intensity:255",
        start,
    )
    sim.on_command("trl>1" if kind == "wDRT" else "exp_start", start)
    stop = start + int(seconds * S)
    for now in range(start, stop + 6 * S, 2_000_000):
        if now >= stop:
            sim._running = False
            sim._next_onset = None if kind == "sDRT" else sim._next_onset
        sim.tick(now)
    lines = [heapq.heappop(sim._queue) for _ in range(len(sim._queue))]
    waiting, rows = [], []
    for due, _, data in lines:
        s = tracker.line(data.decode().strip(), due)
        if s is not None and sim.onsets[s.stimulus - 1] < stop:
            waiting.append(s)
            if tracker.fit.points >= SETTLE:
                rows += [tracker.remap(w) for w in waiting]
                waiting = []
    rows += [tracker.remap(w) for w in waiting]
    return [r.t_mono_ns - sim.onsets[r.stimulus - 1] for r in rows]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 45
    kind = sys.argv[3] if len(sys.argv) > 3 else "sDRT"
    worst = [max(one_run(seed, seconds, kind), key=abs) for seed in range(runs)]
    over = [w for w in worst if abs(w) > 2_000_000]
    ms = sorted(abs(w) / 1e6 for w in worst)
    print(
        f"{kind} {runs} runs of {seconds:g} s: worst onset error per run: median "
        f"{ms[len(ms) // 2]:.3f} ms, p99 {ms[int(len(ms) * 0.99)]:.3f} ms, max {ms[-1]:.3f} ms; "
        f"{len(over)} runs ({100 * len(over) / runs:.1f} %) over 2 ms; signed range "
        f"{min(worst) / 1e6:+.3f}..{max(worst) / 1e6:+.3f} ms"
    )


if __name__ == "__main__":
    main()
