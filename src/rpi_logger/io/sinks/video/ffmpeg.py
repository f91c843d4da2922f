"""Raw frames piped to a system ``ffmpeg`` (for hardware encoders such as ``h264_v4l2m2m``).

`FFmpegSink` has a loop side and a writer side. On the loop, `astart()` starts ffmpeg with
`asyncio.create_subprocess_exec` (in its own session, so a Ctrl+C on the terminal does not cut
the file short; if we die, ffmpeg sees EOF and still finishes the file) and an owned task logs
its stderr; `astop()`, after the writer closed the sink, waits for ffmpeg with the package's
escalation (end of input -> SIGTERM -> SIGKILL) and says why it failed, if it did.

On the writer thread, frames travel as uncompressed video in a NUT stream written by PyAV into
the pipe: NUT carries each frame's exact PTS (time base 1/1_000_000) and ffmpeg keeps them
(``-copyts``, ``-fps_mode passthrough``, ``-enc_time_base -1``), so the MP4 obeys the same
exact-PTS rule and fragmented-MP4 flags as `Mp4Sink`. Pipe order is file order (passthrough
timing neither drops nor duplicates), and the pipe is a `GatedFile`: a frame's row is flushed
before its bytes enter the pipe, so ffmpeg never writes a frame whose row is not on disk
(ffmpeg does not fsync the MP4; ``sync()`` fsyncs the rows). A pipe ffmpeg stops reading for
``exit_timeout_s`` fails the sink instead of hanging its thread.

When ffmpeg dies mid-trial (a full disk, an encoder that cannot start), the sink fails with
ffmpeg's own account (its exit status and last lines, "disk full: <path>" for ENOSPC), reported
once. A trial without frames gives ffmpeg an empty input: no file, and its complaint about
that is not logged.

`check_codec` (async, cached) tells at configure time whether the binary exists and offers an
encoder, so a typo fails there in one line instead of producing no video.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from collections import deque
from fractions import Fraction
from typing import Any

import av

from rpi_logger.io.process import escalation, stop_process
from rpi_logger.io.sinks.base import SinkError
from rpi_logger.io.sinks.video.base import (
    TIME_BASE_US,
    GatedFile,
    VideoSettings,
    VideoSink,
    av_frame,
    keyframe_interval_us,
)
from rpi_logger.io.sinks.writer import is_blocking
from rpi_logger.samples import Frame

log = logging.getLogger(__name__)

_F_SETPIPE_SZ = 1031  # Linux fcntl: bigger pipe buffer, fewer thread wake-ups per frame
_ENCODERS_TIMEOUT_S = 20.0
# On a broken pipe, how long the writer waits for ffmpeg's exit to report its reason.
_REASON_WAIT_S = 5.0

# ffmpeg binary (resolved path) -> the encoder names `ffmpeg -encoders` lists.
_encoders_cache: dict[str, frozenset[str]] = {}


def parse_encoders(text: str) -> frozenset[str]:
    """Encoder names from `ffmpeg -hide_banner -encoders` output (lines after the "------")."""
    names: set[str] = set()
    started = False
    for line in text.splitlines():
        parts = line.split()
        if not started:
            started = bool(parts) and set(parts[0]) == {"-"}
            continue
        if len(parts) >= 2:
            names.add(parts[1])
    return frozenset(names)


def _wait_exit_blocking(pid: int, timeout: float) -> None:
    """Block until process `pid` has exited (a zombie) or `timeout` s passed (Linux /proc;
    elsewhere returns at once). Only blocking mode calls it, on the loop, on purpose."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.002)


async def _which(ffmpeg: str) -> str:
    found = await asyncio.to_thread(shutil.which, ffmpeg)  # a PATH search touches the disk
    if found is None:
        raise SinkError(
            f"ffmpeg encoder: {ffmpeg!r} not found on PATH (install the ffmpeg package)"
        )
    return found


async def ffmpeg_encoders(ffmpeg: str = "ffmpeg") -> frozenset[str]:
    """The encoders the ffmpeg binary offers (asks it once per binary, then cached).

    Raises `SinkError` with one clear line when the binary is missing or does not answer.
    """
    found = await _which(ffmpeg)
    cached = _encoders_cache.get(found)
    if cached is not None:
        return cached
    try:
        proc = await asyncio.create_subprocess_exec(
            found,
            "-hide_banner",
            "-encoders",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        raise SinkError(f"ffmpeg encoder: cannot run {found!r}: {exc}") from None
    try:
        async with asyncio.timeout(_ENCODERS_TIMEOUT_S):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise SinkError(
            f"ffmpeg encoder: {found!r} -encoders did not answer within {_ENCODERS_TIMEOUT_S:g} s"
        ) from None
    names = parse_encoders(out.decode(errors="replace"))
    if proc.returncode != 0 or not names:
        raise SinkError(f"ffmpeg encoder: {found!r} -encoders failed (status {proc.returncode})")
    _encoders_cache[found] = names
    return names


async def check_codec(codec: str, ffmpeg: str = "ffmpeg") -> None:
    """Raise `SinkError` (one line naming the codec) unless ffmpeg offers `codec`."""
    names = await ffmpeg_encoders(ffmpeg)
    if codec not in names:
        h264 = sorted(n for n in names if "264" in n)
        hint = f" (H.264 encoders it has: {', '.join(h264)})" if h264 else ""
        raise SinkError(f"ffmpeg has no encoder {codec!r}{hint}; `ffmpeg -encoders` lists them all")


def build_command(s: VideoSettings, fps: float, path: str) -> list[str]:
    """The ffmpeg command line reading NUT on stdin and writing a fragmented MP4 to ``path``."""
    gop = max(1, round(fps * s.keyframe_interval_s))
    key_every_s = keyframe_interval_us(fps, s.keyframe_interval_s) / 1e6
    if s.encoder_args is not None:
        enc_args = list(s.encoder_args)
    elif s.codec == "libx264":
        # Keyframes come from -force_key_frames alone: a GOP length on top makes x264 demote
        # forced IDRs that land next to its own (and warn every second).
        enc_args = ["-preset", s.preset, "-crf", str(s.crf), "-forced-idr", "1"]
        if s.tune:
            enc_args[2:2] = ["-tune", s.tune]
    else:
        enc_args = ["-b:v", s.bitrate, "-g", str(gop)]
    return [
        s.ffmpeg,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-f",
        "nut",
        "-i",
        "pipe:0",
        "-map",
        "0:v:0",
        "-c:v",
        s.codec,
        *enc_args,
        "-bf",
        "0",
        # Time-based keyframes: at most keyframe_interval_s apart whatever the frame rate.
        "-force_key_frames",
        f"expr:gte(t,n_forced*{key_every_s:.6f})",
        "-pix_fmt",
        "yuv420p",
        # Keep the input's exact timestamps: no shift to zero, no frame-rate resampling, and an
        # encoder time base equal to the input's (1/1_000_000) instead of 1/fps.
        "-copyts",
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "-1",
        "-movflags",
        "frag_keyframe+delay_moov",
        "-frag_duration",
        str(max(1, int(s.fragment_s * 1e6))),
        "-use_editlist",
        "1",
        "-movie_timescale",
        str(TIME_BASE_US),
        # Hand each finished fragment to the file at once: without this ffmpeg keeps whole
        # seconds of video in its output buffer, which a crash of ffmpeg or a power cut loses.
        "-flush_packets",
        "1",
        "-f",
        "mp4",
        "-y",
        path,
    ]


class FFmpegSink(VideoSink):
    """Frames -> NUT pipe -> system ffmpeg -> fragmented MP4. See the module docstring."""

    kind = "ffmpeg"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._stderr_done = threading.Event()  # ffmpeg closed its stderr (it is exiting)
        self._quiet = False  # ended on purpose before any frame: its complaints are noise
        self._wfd: int | None = None
        self._pipe: GatedFile | None = None
        self._nut: Any = None
        self._stream: Any = None
        self.returncode: int | None = None

    # -- loop side -----------------------------------------------------------------------------
    async def astart(self) -> None:
        """Start ffmpeg reading our pipe (before the writer opens the sink)."""
        await _which(self.settings.ffmpeg)
        rfd, wfd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(wfd, _F_SETPIPE_SZ, 1 << 20)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *build_command(self.settings, self.fps, str(self.path)),
                stdin=rfd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(wfd)
            raise SinkError(
                f"ffmpeg encoder: cannot start {self.settings.ffmpeg!r}: {exc}"
            ) from exc
        finally:
            os.close(rfd)  # the child has its copy; ours would hide EOF from it
        self._wfd = wfd
        self._stderr_task = asyncio.create_task(self._read_stderr(), name="ffmpeg-stderr")

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        try:
            async for raw in self._proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                if line and not self._quiet:
                    self._stderr_tail.append(line)
                    log.warning("ffmpeg (%s): %s", self.path.name, line)
        finally:
            self._stderr_done.set()

    async def astop(self) -> None:
        """After the writer closed the sink: wait for ffmpeg to finish the file (escalating),
        then raise `SinkError` with its reason if it failed and the writer did not say so."""
        if self._wfd is not None:  # the writer never took the pipe (its open failed)
            os.close(self._wfd)
            self._wfd = None
        proc = self._proc
        if proc is None:
            return
        s = self.settings
        if is_blocking():
            # Blocking mode (the benchmark's naive path): wait for ffmpeg on the loop, as a
            # `subprocess.run` would.
            _wait_exit_blocking(proc.pid, s.exit_timeout_s)
        await stop_process(
            proc,
            escalation(s.exit_timeout_s, s.kill_timeout_s, None),
            name=f"ffmpeg ({self.path.name})",
        )
        if self._stderr_task is not None:
            try:
                async with asyncio.timeout(5.0):
                    await self._stderr_task
            except TimeoutError:  # a grandchild holds its stderr open; ffmpeg itself is gone
                self._stderr_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._stderr_task
            self._stderr_task = None
        self.returncode = proc.returncode
        if proc.returncode == 0 or self._error is not None:
            return
        if self.frames == 0 and self._quiet:
            log.info("ffmpeg: no frames for %s; no file written", self.path)
            return
        self._error = SinkError(self._reason())
        log.error("%s", self._error)
        raise self._error

    def _reason(self) -> str:
        """ffmpeg's account of why it stopped (once it has exited)."""
        tail = tuple(self._stderr_tail)
        if any("No space left on device" in line for line in tail):
            return f"disk full: {self.path}"
        return (
            f"ffmpeg exited with status {self._proc.returncode if self._proc else None}: "
            f"{' | '.join(tail) or 'no output'}"
        )

    # -- writer side ---------------------------------------------------------------------------
    def _open_video(self) -> None:
        if self._wfd is None:
            raise SinkError("ffmpeg sink: astart() was not awaited before open()")
        wfd, self._wfd = self._wfd, None
        # Unbuffered, rows flushed before each write, and a stalled ffmpeg fails the write.
        self._pipe = GatedFile(wfd, self._before_video_bytes, self.settings.exit_timeout_s)

    def _encode(self, frame: Frame, pts_us: int, t_take_ns: int) -> None:
        if self._nut is None:  # the NUT header names the pixel format: the first frame's
            self._nut = av.open(self._pipe, mode="w", format="nut")
            stream = self._nut.add_stream("rawvideo")
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = frame.pixel_format
            stream.time_base = stream.codec_context.time_base = Fraction(1, TIME_BASE_US)
            self._stream = stream
        vf = av_frame(frame, pts_us, self._stream.codec_context.time_base)
        self._row(frame, pts_us, t_take_ns)  # rawvideo: one packet per frame, at once
        self._into_pipe(lambda: self._nut.mux(self._stream.encode(vf)))

    def _into_pipe(self, write: Any) -> None:
        try:
            write()
        except (OSError, av.error.FFmpegError) as exc:
            if self._rows_error is not None:
                raise self._rows_error from None
            raise SinkError(self._broken_pipe_reason(exc)) from exc

    def _broken_pipe_reason(self, exc: BaseException) -> str:
        """ffmpeg stopped reading: say why in its own words, once it has exited (on a writer
        thread only: on the loop nobody could read its stderr meanwhile)."""
        if asyncio.events._get_running_loop() is None and self._stderr_done.wait(_REASON_WAIT_S):
            deadline = time.monotonic() + 1.0
            while (
                self._proc is not None
                and self._proc.returncode is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            if self._proc is not None and self._proc.returncode not in (None, 0):
                return self._reason()
        return f"ffmpeg stopped reading frames ({exc})"

    def _finish_video(self) -> None:
        if self._nut is None:
            self._quiet = True  # no frame: ffmpeg's complaint about an empty input is noise
            return
        nut = self._nut
        self._into_pipe(lambda: nut.mux(self._stream.encode(None)))
        self._nut = None
        self._into_pipe(nut.close)

    def _sync_video(self) -> None:
        return None  # ffmpeg owns the MP4 (it does not fsync it); the rows are synced

    def _release_video(self) -> None:
        nut, self._nut = self._nut, None
        if nut is not None:
            with contextlib.suppress(Exception):
                nut.close()
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()  # EOF: ffmpeg finalises the MP4
            self._pipe = None
