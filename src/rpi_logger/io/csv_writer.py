"""CSV rows to disk from an asyncio loop (or any thread) without ever blocking the loop.

`CsvStreamWriter` is a `SinkWriter` (io/sinks/writer.py: the queue, the writer thread, flushes
at least every `flush_interval_s`, fsyncs, the overflow and failure policies, blocking mode) over
a `CsvSink` (io/sinks/csv_sink.py: how values are formatted, appending, cutting a torn row back).
What it adds is rows: `write_row` takes a sequence in column order or a mapping by column name
and checks it at the call, before anything is queued.

Usage::

    async with CsvStreamWriter(path, ["frame_index", "t_mono_ns", "t_wall_unix"]) as w:
        w.write_row((i, t, wall))        # O(1), never blocks the loop
        await w.sync()                   # everything so far is flushed and fsynced
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from rpi_logger.io.bridge import Overflow
from rpi_logger.io.sinks import CsvSink, SinkWriter

__all__ = ["CsvStreamWriter"]


class CsvStreamWriter(SinkWriter[tuple[Any, ...]]):
    """Append rows to the CSV file `path` (header `columns`; `append=False` truncates)."""

    sink: CsvSink

    def __init__(
        self,
        path: str | os.PathLike[str],
        columns: Sequence[str],
        *,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        overflow: Overflow = "block",
        name: str | None = None,
        append: bool = True,
        fsync_interval_s: float | None = 1.0,
    ) -> None:
        super().__init__(
            CsvSink(path, columns, append=append),
            flush_interval_s=flush_interval_s,
            fsync_interval_s=fsync_interval_s,
            max_queue=max_queue,
            overflow=overflow,
            name=name,
        )
        self.path = self.sink.path
        self.columns = self.sink.columns

    def write_row(self, row: Sequence[Any] | Mapping[str, Any]) -> bool:
        """Queue one row (missing keys of a mapping are empty cells); raises ValueError or
        TypeError for a row that does not fit the columns. False if it was dropped."""
        return self.submit(self.sink.row(row))

    async def write_row_async(self, row: Sequence[Any] | Mapping[str, Any]) -> bool:
        """`write_row`, waiting for room (under "block") without blocking the loop."""
        return await self.asubmit(self.sink.row(row))
