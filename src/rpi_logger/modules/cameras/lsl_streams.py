"""A camera's frame markers over LSL (``lsl = true``): one sample per captured frame, at its
capture time, with the frame's index in the trial's video (its row in the timing CSV; -1
outside a trial) and the device's frame counter."""

from __future__ import annotations

from rpi_logger.framework.lsl_outlets import Channel, OutletSpec


def frame_marker_spec(camera_id: str, fps: float) -> OutletSpec:
    return OutletSpec(
        "frames",
        f"Cameras {camera_id} frames",
        "VideoFrames",
        (Channel("frame_index", "", "FrameIndex"), Channel("sequence", "", "FrameCounter")),
        nominal_srate=float(fps),
        channel_format="int64",
        device=camera_id,
    )
