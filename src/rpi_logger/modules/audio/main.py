"""Entry point of the Audio module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.audio.module import AudioModule


def create_module(context: ModuleContext) -> AudioModule:
    return AudioModule(context)
