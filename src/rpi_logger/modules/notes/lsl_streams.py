"""The session's marker streams over LSL (``lsl = true`` for Notes): notes, and each trial's
start and stop at the instants every module shares."""

from __future__ import annotations

from rpi_logger.framework.lsl_outlets import Channel, OutletSpec

SPECS = (
    OutletSpec(
        "notes",
        "RPi Logger notes",
        "Markers",
        (Channel("text"), Channel("trial"), Channel("modules")),
        channel_format="string",
        device="notes",
    ),
    OutletSpec(
        "trials",
        "RPi Logger trials",
        "Markers",
        (Channel("event"), Channel("trial"), Channel("label")),
        channel_format="string",
        device="trials",
    ),
)
