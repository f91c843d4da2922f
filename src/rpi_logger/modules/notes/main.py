"""Entry point of the Notes module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.notes.module import NotesModule


def create_module(context: ModuleContext) -> NotesModule:
    return NotesModule(context)
