"""CsvSink: rows to a CSV file, as the `csv` module writes them.

Floats are written with `repr` (shortest exact form, so a `t_wall_unix` keeps its full
precision), None as an empty cell, everything else with `str`. Lines end with "\\n"; a value
holding a carriage return is quoted so it stays one field. The file is UTF-8; a lone surrogate
(possible in JSON input, e.g. a note) is written as "\\\\udXXX" text rather than failing.

`append=True` appends to an existing non-empty file whose header matches the columns (a
mismatch raises ValueError; a torn last line is terminated first) and writes the header to a
new or empty one; `append=False` truncates. After a failure `abort` cuts the file back to its
last good flush, so a full disk never leaves half a row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from rpi_logger.io.atomic import fsync_dir

from .base import Sink

__all__ = ["CsvSink"]

Row = tuple[Any, ...]

# Rows formatted per csv.writerows call. csv formatting holds the GIL for the whole call (~2 µs a
# row, float repr dominates); chunking bounds how long a writer thread can keep the loop thread
# from running to well under a millisecond.
_CHUNK_ROWS = 256


def _format_with_cr(rows: Sequence[Row]) -> str:
    """Format rows of which some hold a carriage return in a value.

    With a "\\n" line terminator the csv module (3.11) leaves a bare "\\r" unquoted, and readers
    then split the row there (a note typed in a Windows browser ends lines with "\\r\\n"). Such
    rows are written with every field quoted, which keeps the "\\r" inside the field.
    """
    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        start = out.tell()
        plain.writerow(row)
        if "\r" in out.getvalue()[start:]:
            out.seek(start)
            out.truncate()
            quoted.writerow(row)
    return out.getvalue()


class CsvSink(Sink[Row]):
    """A CSV file with a header row; `row()` checks a row before it is queued anywhere."""

    def __init__(
        self, path: str | os.PathLike[str], columns: Sequence[str], *, append: bool = True
    ) -> None:
        cols = tuple(columns)
        if isinstance(columns, str) or not cols or not all(isinstance(c, str) for c in cols):
            raise ValueError(f"columns must be a non-empty sequence of names, got {columns!r}")
        if len(set(cols)) != len(cols):
            raise ValueError(f"duplicate column names in {cols!r}")
        self.path = Path(path)
        self.columns: tuple[str, ...] = cols
        self.append = append
        self._ncols = len(cols)
        self._colset = frozenset(cols)
        self._file: TextIO | None = None
        self._good_size = 0  # file size at the last good flush: `abort` cuts back to it
        self._sio = io.StringIO()
        self._csv = csv.writer(self._sio, lineterminator="\n")

    def row(self, row: Sequence[Any] | Mapping[str, Any]) -> Row:
        """`row` as a tuple in column order, snapshotted (the caller may reuse its list or dict):
        a sequence in column order, or a mapping by column name (missing keys are empty
        cells). Raises ValueError/TypeError for a row that does not fit the columns."""
        t = type(row)
        if t is tuple:
            item: Row = row  # type: ignore[assignment]
            if len(item) == self._ncols:
                return item  # the hot path: one type check, one length check
        elif t is list:
            item = tuple(row)  # type: ignore[arg-type]
        elif isinstance(row, Mapping):
            extra = row.keys() - self._colset
            if extra:
                raise ValueError(f"{self.path.name}: unknown columns {sorted(extra)!r}")
            return tuple(map(row.get, self.columns))
        elif isinstance(row, str | bytes):
            raise TypeError(f"{self.path.name}: a row is a sequence of values, not {t.__name__}")
        else:
            item = tuple(row)
        if len(item) != self._ncols:
            raise ValueError(
                f"{self.path.name}: row has {len(item)} values, expected {self._ncols} "
                f"({', '.join(self.columns)})"
            )
        return item

    def open(self) -> None:
        """Create folders and the file, check or write the header, fsync it (and a new
        directory entry)."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        nonempty = self.append and not created and path.stat().st_size > 0
        terminate_line = False
        if nonempty:
            with open(path, encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), None)
            if header != list(self.columns):
                raise ValueError(
                    f"{path}: existing header {header!r} does not match columns "
                    f"{list(self.columns)!r}; refusing to append"
                )
            with open(path, "rb") as fb:
                fb.seek(-1, os.SEEK_END)
                # A crash can leave a partial last line; end it so new rows start cleanly.
                terminate_line = fb.read(1) != b"\n"
        # backslashreplace: a lone surrogate must not stop the writer with an encoding error.
        f = open(  # closed by close() or abort()
            path,
            "a" if self.append else "w",
            encoding="utf-8",
            errors="backslashreplace",
            newline="",
        )
        try:
            if terminate_line:
                f.write("\n")
            if not nonempty:
                csv.writer(f, lineterminator="\n").writerow(self.columns)
            f.flush()
            os.fsync(f.fileno())
            if created:
                fsync_dir(path.parent)  # the new directory entry must survive a power cut too
            self._good_size = os.fstat(f.fileno()).st_size
        except BaseException:
            f.close()
            raise
        self._file = f

    def write(self, batch: Sequence[Row]) -> None:
        """Format and write the rows, one write call per chunk of rows."""
        f, sio = self._file, self._sio
        assert f is not None, "CsvSink.write before open"
        for i in range(0, len(batch), _CHUNK_ROWS):
            chunk = batch[i : i + _CHUNK_ROWS] if len(batch) > _CHUNK_ROWS else batch
            sio.seek(0)
            sio.truncate()
            self._csv.writerows(chunk)
            text = sio.getvalue()
            if "\r" in text:  # rare: one C-level scan keeps the common case free
                text = _format_with_cr(chunk)
            f.write(text)

    def flush(self) -> None:
        f = self._file
        assert f is not None, "CsvSink.flush before open"
        f.flush()
        self._good_size = os.fstat(f.fileno()).st_size

    def sync(self) -> None:
        self.flush()
        assert self._file is not None
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            f, self._file = self._file, None
            f.close()

    def abort(self) -> None:
        """Close without flushing what may be torn, and cut the file back to the last good
        flush (truncating needs no free space)."""
        f, self._file = self._file, None
        if f is None:
            return
        with contextlib.suppress(OSError):  # the same failure again while flushing the buffer
            f.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_size > self._good_size:
                os.truncate(self.path, self._good_size)
