"""Entry point of the DRT module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.drt.module import DrtModule


def create_module(context: ModuleContext) -> DrtModule:
    return DrtModule(context)
