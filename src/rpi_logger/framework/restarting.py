"""Device work that restarts whenever a module's configure() replaces its devices.

Every module with live device work (capture loops, readers, a pump) runs the same loop: wait
until configure() sets `changed`, start the work for what is configured now, run it until
`changed` is set again, cancel it, start anew. `run_restarting` is that loop, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

#: The work for what is configured now: (task name, coroutine) pairs; empty: nothing to run.
Work = list[tuple[str, Coroutine[Any, Any, Any]]]


async def run_restarting(changed: asyncio.Event, work: Callable[[], Work]) -> NoReturn:
    """Run `work()`'s coroutines in one TaskGroup, restarting them each time `changed` is set.

    A coroutine that fails ends the group (and this call) with its error, as a TaskGroup does;
    one that ends normally leaves the others running until the next change.
    """
    while True:
        await changed.wait()
        changed.clear()
        jobs = work()
        if not jobs:
            continue
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(coro, name=name) for name, coro in jobs]
            await changed.wait()
            for task in tasks:
                task.cancel()
