"""Entry point of the LSL module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.lsl.module import LslModule


def create_module(context: ModuleContext) -> LslModule:
    return LslModule(context)
