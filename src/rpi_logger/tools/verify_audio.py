"""Audio checks for `rpi-logger verify` (work in progress)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rpi_logger.tools.verify import FileContext, Report


def check_audio(report: Report, ctx: FileContext) -> None:
    """Append findings about one audio file entry of the manifest to `report`."""
