"""Entry point of the EyeTracker module."""

from rpi_logger.framework.base import ModuleContext
from rpi_logger.modules.eyetracker.module import EyeTrackerModule


def create_module(context: ModuleContext) -> EyeTrackerModule:
    return EyeTrackerModule(context)
