"""Entry point of the Cameras module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.cameras.module import CamerasModule


def create_module(context: ModuleContext) -> CamerasModule:
    return CamerasModule(context)
