"""One logging set-up for every process: readable console, rotating DEBUG file, module name
in every line."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from pathlib import Path

_CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s [%(process_name)s] %(name)s: %(message)s"
# A supervised module's stderr is read by the master, which stamps time and module name itself.
RELAY_FORMAT = "%(levelname)s %(name)s: %(message)s"
_FILE_FORMAT = (
    "%(asctime)s.%(msecs)03d %(levelname)-7s [%(process_name)s pid=%(process_pid)s] "
    "%(name)s: %(message)s"
)


_listener: logging.handlers.QueueListener | None = None
_process_name = "main"


def shutdown_logging() -> None:
    """Flush and stop the writer thread (registered with atexit; call it before `os._exit`)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(shutdown_logging)


class _ProcessNameFilter(logging.Filter):
    """Stamps every record with the logger process's module name (e.g. `master`, `Cameras`)."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def filter(self, record: logging.LogRecord) -> bool:
        # Lines relayed from a module process already carry that module's name.
        if not hasattr(record, "process_name"):
            record.process_name = self.process_name
            record.process_pid = record.process
        return True


class _QuietFileErrors:
    """A file handler that, when its disk is full or gone, says so once on stderr instead of
    printing logging's traceback for every record."""

    _failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if self._failed:
            return
        self._failed = True
        exc = sys.exc_info()[1]
        target = getattr(self, "baseFilename", "?")
        try:
            print(f"rpi-logger: log file {target} not written: {exc}", file=sys.stderr)
        except OSError:
            pass


class _RotatingFile(_QuietFileErrors, logging.handlers.RotatingFileHandler):
    pass


class _SessionFile(_QuietFileErrors, logging.FileHandler):
    pass


def setup_logging(
    process_name: str,
    level: str | int = "INFO",
    log_file: Path | None = None,
    *,
    relay: bool = False,
    max_bytes: int = 10_000_000,
    backups: int = 3,
) -> None:
    """Configure the root logger for this process.

    Console output goes to stderr (stdout is reserved for the module protocol); with `relay`
    it is in the short form the master parses and re-logs under the module's name. The optional
    file handler logs everything at DEBUG and rotates at `max_bytes`. Safe to call again: earlier
    handlers installed by this function are replaced.
    """
    global _listener, _process_name
    _process_name = process_name
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rpi_logger", False):
            root.removeHandler(handler)
    if _listener is not None:
        _listener.stop()
        _listener = None
    root.setLevel(logging.DEBUG)
    name_filter = _ProcessNameFilter(process_name)

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level.upper() if isinstance(level, str) else level)
    console.setFormatter(logging.Formatter(RELAY_FORMAT if relay else _CONSOLE_FORMAT, "%H:%M:%S"))
    handlers: list[logging.Handler] = [console]

    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"rpi-logger: no log file in {log_file.parent}: {exc}", file=sys.stderr)
        else:
            file_handler = _RotatingFile(
                log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
            )
            file_handler.setLevel(logging.DEBUG)
            file_handler.setFormatter(logging.Formatter(_FILE_FORMAT, "%Y-%m-%d %H:%M:%S"))
            handlers.append(file_handler)

    # Loggers only enqueue; a listener thread formats and writes, so a log line on the event
    # loop never waits on a terminal or a disk.
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(records)
    queue_handler.addFilter(name_filter)
    queue_handler._rpi_logger = True  # type: ignore[attr-defined]
    root.addHandler(queue_handler)
    _listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    _listener.start()
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("libav", "PIL", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def default_log_file(process_name: str = "rpi-logger") -> Path:
    """`$XDG_STATE_HOME/rpi-logger/logs/<name>.log` (default under `~/.local/state`)."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rpi-logger" / "logs" / f"{process_name}.log"


def add_log_file(path: Path, level: int = logging.DEBUG) -> logging.Handler:
    """Also write this process's log to `path` (e.g. a session's master.log) until removed.

    Opens the file: call it off the event loop.
    """
    handler = _SessionFile(path, encoding="utf-8")
    handler.setLevel(level)
    handler.addFilter(_ProcessNameFilter(_process_name))
    handler.setFormatter(logging.Formatter(_FILE_FORMAT, "%Y-%m-%d %H:%M:%S"))
    if _listener is not None:
        # The listener reads its handler tuple per record; swapping the tuple is atomic.
        _listener.handlers = (*_listener.handlers, handler)
    else:
        logging.getLogger().addHandler(handler)
    return handler


def remove_log_file(handler: logging.Handler) -> None:
    """Stop writing to a file added by `add_log_file` (its records so far are kept)."""
    if _listener is not None and handler in _listener.handlers:
        _listener.handlers = tuple(h for h in _listener.handlers if h is not handler)
    else:
        logging.getLogger().removeHandler(handler)
    handler.close()
