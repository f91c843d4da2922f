"""Entry point of the VOG module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.vog.module import VogModule


def create_module(context: ModuleContext) -> VogModule:
    return VogModule(context)
