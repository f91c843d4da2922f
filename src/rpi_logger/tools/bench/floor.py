"""The idle floor: an empty asyncio loop's lag, sampled as every process samples its own.

    python -m rpi_logger.tools.bench.floor SECONDS

Runs `LoopLagMonitor` (same interval and histogram as the master and the modules) on a loop
that does nothing else for SECONDS and prints its snapshot as one JSON line. Whatever lag it
shows is the machine's (scheduler, timer granularity, other processes), not any code's: the
best any process could do there at that moment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from rpi_logger.io.loop_monitor import LoopLagMonitor


async def sample(seconds: float) -> dict[str, Any]:
    """The loop-lag snapshot of an otherwise empty loop over `seconds`."""
    monitor = LoopLagMonitor()
    async with asyncio.TaskGroup() as tg:
        task = monitor.start_in(tg)
        await asyncio.sleep(seconds)
        task.cancel()
    return monitor.snapshot()


def main() -> None:
    seconds = float(sys.argv[1])
    # Its lags are the figure, not news: no warnings from this loop's monitor.
    logging.getLogger("rpi_logger.loop").setLevel(logging.ERROR)
    print(json.dumps({"loop_lag_ms": asyncio.run(sample(seconds))}), flush=True)


if __name__ == "__main__":
    main()
