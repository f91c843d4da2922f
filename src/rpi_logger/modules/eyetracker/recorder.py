"""One trial's files of one Neon: a `TrialStream` per file, samples routed by kind.

```
EyeTracker/<device>/trialNNN_scene.mp4 + trialNNN_scene_timing.csv   (video sink, exact PTS)
                    trialNNN_gaze.csv, _imu.csv, _events.csv           (CSV sinks)
                    trialNNN_time_sync.csv                             (every clock estimate)
                    trialNNN_eyes.mp4 + timing     (eye_video = true)
                    trialNNN_scene_overlay.mp4 + timing (overlay_video = true)
```

Rows are formatted on each file's writer thread (`RowSink`), never on the loop. The overlay
video is a second trial stream of the same frames with its own writer thread and queue: when
it falls behind it drops its own frames, never the raw video's.

The time-sync file lists the estimate in force at the trial's start (its row placed at the
start, `measured_mono_ns` saying when it was measured) and every estimate made during the
trial, accepted or not.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from rpi_logger.framework.base import FileRecord
from rpi_logger.framework.trial import TrialWindow
from rpi_logger.framework.trial_stream import TrialStream
from rpi_logger.io.clock_map import TIME_SYNC_COLUMNS, OffsetEstimate, time_sync_row
from rpi_logger.io.sinks import CsvSink
from rpi_logger.io.sinks.base import Sink, SinkProxy
from rpi_logger.io.sinks.video import VideoSettings, sink_class
from rpi_logger.modules.eyetracker.backends.base import NeonInfo
from rpi_logger.modules.eyetracker.streams import events, eye_video, gaze, imu
from rpi_logger.samples import Frame
from rpi_logger.tools.overlay import MAX_GAZE_AGE_NS, draw_gaze

ENCODER_NICE = 10
CSV_KINDS = {"gaze": gaze.COLUMNS, "imu": imu.COLUMNS, "events": events.COLUMNS}
#: Nominal sample intervals, for the samples a gap misses.
PERIODS_NS = {"gaze": gaze.PERIOD_NS, "imu": imu.PERIOD_NS, "eyes": eye_video.PERIOD_NS}


class RowSink(SinkProxy[Any]):
    """A CSV sink fed samples: each becomes its row on the writer thread."""

    def write(self, batch: Sequence[Any]) -> None:
        self.inner.write([s.row() for s in batch])


class SyncRow:
    """A time-sync row with its place in the file."""

    __slots__ = ("estimate", "t_mono_ns")

    def __init__(self, estimate: OffsetEstimate, t_mono_ns: int) -> None:
        self.estimate = estimate
        self.t_mono_ns = t_mono_ns

    def row(self) -> tuple:
        return time_sync_row(self.estimate, self.t_mono_ns)


class GazeTrack:
    """Recent gaze points for the live overlay: appended on the loop, read on its writer."""

    def __init__(self, size: int = 2000) -> None:
        self._points: deque[tuple[int, float, float]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, t_mono_ns: int, x: float, y: float) -> None:
        with self._lock:
            self._points.append((t_mono_ns, x, y))

    def at(self, t_mono_ns: int) -> tuple[float, float] | None:
        with self._lock:
            points = list(self._points)
        best = min(points, key=lambda p: abs(p[0] - t_mono_ns), default=None)
        if best is None or abs(best[0] - t_mono_ns) > MAX_GAZE_AGE_NS:
            return None
        return best[1], best[2]


class OverlaySink(SinkProxy[Frame]):
    """The scene video with the gaze ring drawn into a copy of each frame (writer thread)."""

    def __init__(self, inner: Sink[Frame], track: GazeTrack) -> None:
        super().__init__(inner)
        self.timing_path = getattr(inner, "timing_path", None)
        self.track = track

    def write(self, batch: Sequence[Frame]) -> None:
        out = []
        for frame in batch:
            point = self.track.at(frame.t_mono_ns)
            if point is not None:
                image = draw_gaze(frame.image, frame.pixel_format, *point)
                frame = Frame(
                    image,
                    frame.t_mono_ns,
                    frame.t_wall_unix,
                    frame.t_device_ns,
                    frame.sequence,
                    frame.pixel_format,
                )
            out.append(frame)
        self.inner.write(out)


def video_settings(settings: dict[str, Any]) -> VideoSettings:
    kw = {k: settings[k] for k in ("encoder", "crf", "preset", "threads") if k in settings}
    if kw.get("encoder") == "ffmpeg" and settings.get("ffmpeg_codec"):
        kw["codec"] = settings["ffmpeg_codec"]
    return VideoSettings(**kw)


class TrialFiles:
    """The files of one trial of one device (module docstring)."""

    def __init__(
        self,
        window: TrialWindow,
        folder: Path,
        info: NeonInfo,
        settings: dict[str, Any],
        kinds: tuple[str, ...],
        track: GazeTrack | None,
    ) -> None:
        self.window = window
        self.folder = folder
        self.info = info
        self.settings = settings
        self.kinds = kinds
        self.track = track
        self.streams: dict[str, TrialStream[Any]] = {}
        self._sync_last: int | None = None
        self.disconnects = 0
        self._last_seq: dict[str, int] = {}  # video kind -> last device sequence offered
        self._shift: dict[str, int] = {}  # video kind -> sequence numbers skipped by reconnects
        self._bridge: set[str] = set()  # video kinds whose next frame follows a reconnect

    def _sequence_of(self, kind: str) -> Callable[[Frame], int]:
        """A video's device sequence, less the jump across each reconnect: the frames of a
        disconnect are its gap (`gap`), not device sequence drops as well."""

        def sequence_of(frame: Frame) -> int:
            last = self._last_seq.get(kind)
            if kind in self._bridge and last is not None:
                self._shift[kind] = self._shift.get(kind, 0) + frame.sequence - last - 1
            self._bridge.discard(kind)
            self._last_seq[kind] = frame.sequence
            return frame.sequence - self._shift.get(kind, 0)

        return sequence_of

    def _extra(self) -> dict[str, Any]:
        return {"backend": self.info.backend, "simulated": self.info.simulated}

    def _video(
        self, kind: str, name: str, width: int, height: int, fps: float, wrap: Any = None
    ) -> TrialStream[Any]:
        settings = video_settings(self.settings)
        stem = f"{self.window.stem}_{name}"
        sink: Any = sink_class(settings.encoder)(
            self.folder / f"{stem}.mp4",
            self.folder / f"{stem}_timing.csv",
            width=width,
            height=height,
            fps=fps,
            origin_ns=self.window.origin_ns,
            settings=settings,
        )
        timing = sink.timing_path
        if wrap is not None:
            sink = wrap(sink)
        extra = {
            **self._extra(),
            "encoder": settings.encoder,
            "width": width,
            "height": height,
            "fps": fps,
        }
        return TrialStream(
            self.window,
            sink,
            FileRecord(self.info.id, "video", sink.path, timing, extra={"stream": name, **extra}),
            name=f"{self.info.id} {name}",
            max_items=max(8, round(fps)),
            sequence_of=self._sequence_of(kind) if kind != "overlay" else None,
            time_of=attrgetter("t_mono_ns"),
            nice=ENCODER_NICE,
            wake_items=1,
        )

    def _csv(
        self,
        name: str,
        columns: Sequence[str],
        max_items: int,
        time_of: Callable[[Any], int] | None = None,
    ) -> TrialStream[Any]:
        path = self.folder / f"{self.window.stem}_{name}.csv"
        return TrialStream(
            self.window,
            RowSink(CsvSink(path, columns, append=True)),
            FileRecord(self.info.id, "csv", path, extra={"stream": name, **self._extra()}),
            name=f"{self.info.id} {name}",
            max_items=max_items,
            **({"time_of": time_of} if time_of else {}),
        )

    async def open(
        self,
        announce: Callable[[FileRecord], Awaitable[None]] | None,
        in_force: OffsetEstimate | None,
    ) -> list[FileRecord]:
        """Open every file (announced); raises `SinkError` for a file that cannot be made."""
        info = self.info
        plan: dict[str, TrialStream[Any]] = {}
        if "scene" in self.kinds:
            plan["scene"] = self._video(
                "scene", "scene", info.scene_width, info.scene_height, info.scene_fps
            )
            if self.track is not None:
                track = self.track
                plan["overlay"] = self._video(
                    "overlay",
                    "scene_overlay",
                    info.scene_width,
                    info.scene_height,
                    info.scene_fps,
                    wrap=lambda sink: OverlaySink(sink, track),
                )
        if "eyes" in self.kinds:
            plan["eyes"] = self._video("eyes", "eyes", eye_video.WIDTH, eye_video.HEIGHT, 200.0)
        for kind, columns in CSV_KINDS.items():
            if kind in self.kinds:
                plan[kind] = self._csv(kind, columns, max_items=4096)
        plan["time_sync"] = self._csv("time_sync", TIME_SYNC_COLUMNS, max_items=256)
        records = []
        try:
            for kind, stream in plan.items():
                records.append(await stream.open(announce))
                self.streams[kind] = stream
        except BaseException:
            await self.close()
            raise
        if in_force is not None:
            self.time_sync(in_force, at_start=True)
        return records

    # -- loop side, per sample ----------------------------------------------------------------
    def offer(self, kind: str, sample: Any) -> None:
        if kind == "eyes":
            sample = sample.frame  # the video sink takes the frame itself
        stream = self.streams.get(kind)
        if stream is not None:
            stream.offer(sample)
        if kind == "scene" and "overlay" in self.streams:
            self.streams["overlay"].offer(sample)

    def lost(self, kind: str, t_mono_ns: int, sequence: int | None) -> None:
        stream = self.streams.get(kind)
        if stream is not None:
            stream.lost(t_mono_ns, sequence)

    def gap(self, kind: str, start_ns: int, end_ns: int, reason: str) -> None:
        """`kind`'s stream delivered nothing from `start_ns` to `end_ns` (host clock)."""
        names = [kind, "overlay"] if kind == "scene" else [kind]
        self._bridge.add(kind)
        for name in names:
            stream = self.streams.get(name)
            if stream is None:
                continue
            period = PERIODS_NS.get(kind)
            if kind == "scene":
                period = round(1e9 / self.info.scene_fps)
            missing = max(0, round((end_ns - start_ns) / period) - 1) if period else None
            stream.gap(start_ns, end_ns, missing, reason)

    def time_sync(self, estimate: OffsetEstimate, at_start: bool = False) -> None:
        """An estimate into the time-sync file, placed at its measurement (or at the start)."""
        stream = self.streams.get("time_sync")
        if stream is None:
            return
        t = self.window.start_ns if at_start else estimate.t_mono_ns
        if self._sync_last is not None:
            t = max(t, self._sync_last + 1)
        t = max(t, self.window.start_ns)
        if stream.offer(SyncRow(estimate, t)):
            self._sync_last = t

    # -- end -----------------------------------------------------------------------------------
    async def close(self) -> list[FileRecord]:
        records = []
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            record = await stream.close()
            if self.disconnects:
                record.extra["disconnects"] = self.disconnects
            records.append(record)
        return records

    def status(self) -> dict[str, Any]:
        return {kind: stream.status() for kind, stream in self.streams.items()}
