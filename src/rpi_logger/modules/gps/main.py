"""Entry point of the GPS module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.gps.module import GpsModule


def create_module(context: ModuleContext) -> GpsModule:
    return GpsModule(context)
