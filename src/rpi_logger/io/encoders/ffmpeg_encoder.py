"""Raw frames piped to a system ``ffmpeg`` (for hardware encoders such as ``h264_v4l2m2m``).

The process is started with `asyncio.create_subprocess_exec`. Frames travel as uncompressed
video in a NUT stream, written by PyAV on the encoder thread into a pipe: NUT carries each
frame's exact PTS (time base 1/1_000_000), and ffmpeg keeps them (``-copyts``,
``-fps_mode passthrough``, ``-enc_time_base -1``), so the MP4 obeys the same exact-PTS rule as
the PyAV encoder. The output uses the same fragmented-MP4 flags.

The pipe is a plain `os.pipe` whose write end is owned by the encoder thread (blocking writes
there, never on the loop); ffmpeg's stderr is read and logged by an owned task. `close()` ends
the NUT stream and closes the pipe (ffmpeg sees EOF and finalises), then waits for the process
with escalation: wait -> SIGTERM -> wait -> SIGKILL. The process runs in its own session, so a
Ctrl+C on the terminal does not cut the file short; if our process dies, ffmpeg sees EOF and
still finishes the file.

``on_written`` fires just before a frame is written into the pipe (ffmpeg with passthrough
timing neither drops nor duplicates frames, so pipe order = file order). The pipe is a
`GatedFile`: before the bytes of a frame enter it, ``flush_rows`` has put the rows of every frame
sent so far on the OS, so ffmpeg can never write a frame whose timing row is not on disk (ffmpeg
does not fsync the MP4; the timing CSV is fsynced on its own schedule).

`check_codec` (async, cached) tells at configure time whether the ffmpeg binary exists and offers
an encoder, so a typo fails there with one clear line instead of producing no video.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

from rpi_logger.io.encoders.base import (
    TIME_BASE_US,
    Encoder,
    EncoderError,
    EncoderStats,
    FlushRows,
    GatedFile,
    OnWritten,
    keyframe_interval_us,
)
from rpi_logger.modules.cameras.frames import Frame

log = logging.getLogger(__name__)

_F_SETPIPE_SZ = 1031  # Linux fcntl: bigger pipe buffer, fewer thread wake-ups per frame


@dataclass(slots=True)
class FFmpegSettings:
    """How to run ffmpeg. ``encoder_args`` replaces the per-encoder defaults when given."""

    ffmpeg: str = "ffmpeg"
    encoder: str = "libx264"
    crf: int = 23  # libx264 only
    preset: str = "superfast"  # libx264 only
    bitrate: str = "4M"  # encoders without a constant-quality mode (h264_v4l2m2m, ...)
    keyframe_interval_s: float = 1.0
    fragment_s: float = 0.5
    encoder_args: list[str] | None = None
    extra_output_args: list[str] = field(default_factory=list)
    exit_timeout_s: float = 15.0  # after EOF, before SIGTERM
    kill_timeout_s: float = 5.0  # after SIGTERM, before SIGKILL
    input_pixel_format: str | None = None  # None: taken from the first frame's format


class _PipeBroken(EncoderError):
    """ffmpeg stopped reading: the reason is in its exit status and output, read at close."""


def ffmpeg_available(ffmpeg: str = "ffmpeg") -> tuple[bool, str]:
    """Whether the ffmpeg binary can be found, and if not, why."""
    if shutil.which(ffmpeg) is None:
        return False, f"{ffmpeg!r} not found on PATH (install the ffmpeg package)"
    return True, ""


# ffmpeg binary (resolved path) -> the encoder names `ffmpeg -encoders` lists.
_encoders_cache: dict[str, frozenset[str]] = {}
_ENCODERS_TIMEOUT_S = 20.0


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


async def ffmpeg_encoders(ffmpeg: str = "ffmpeg") -> frozenset[str]:
    """The encoders the ffmpeg binary offers (asks it once per binary, then cached).

    Raises `EncoderError` with one clear line when the binary is missing or does not answer.
    """
    found = await asyncio.to_thread(shutil.which, ffmpeg)  # a PATH search touches the disk
    if found is None:
        raise EncoderError(f"ffmpeg encoder: {ffmpeg!r} not found on PATH (install the ffmpeg "
                           f"package)")
    cached = _encoders_cache.get(found)
    if cached is not None:
        return cached
    try:
        proc = await asyncio.create_subprocess_exec(
            found, "-hide_banner", "-encoders",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        raise EncoderError(f"ffmpeg encoder: cannot run {found!r}: {exc}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), _ENCODERS_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise EncoderError(f"ffmpeg encoder: {found!r} -encoders did not answer within "
                           f"{_ENCODERS_TIMEOUT_S:g} s") from None
    names = parse_encoders(out.decode(errors="replace"))
    if proc.returncode != 0 or not names:
        raise EncoderError(f"ffmpeg encoder: {found!r} -encoders failed (status "
                           f"{proc.returncode})")
    _encoders_cache[found] = names
    return names


async def check_codec(codec: str, ffmpeg: str = "ffmpeg") -> None:
    """Raise `EncoderError` (one line naming the codec) unless ffmpeg offers `codec`."""
    names = await ffmpeg_encoders(ffmpeg)
    if codec not in names:
        h264 = sorted(n for n in names if "264" in n)
        hint = f" (H.264 encoders it has: {', '.join(h264)})" if h264 else ""
        raise EncoderError(f"ffmpeg has no encoder {codec!r}{hint}; `ffmpeg -encoders` lists "
                           f"them all")


def build_command(s: FFmpegSettings, fps_hint: float, path: str) -> list[str]:
    """The ffmpeg command line reading NUT on stdin and writing a fragmented MP4 to ``path``."""
    gop = max(1, round(fps_hint * s.keyframe_interval_s))
    key_every_s = keyframe_interval_us(fps_hint, s.keyframe_interval_s) / 1e6
    if s.encoder_args is not None:
        enc_args = list(s.encoder_args)
    elif s.encoder == "libx264":
        # Keyframes come from -force_key_frames alone: a GOP length on top makes x264 demote
        # forced IDRs that land next to its own (and warn every second).
        enc_args = ["-preset", s.preset, "-tune", "zerolatency", "-crf", str(s.crf),
                    "-forced-idr", "1"]
    else:
        enc_args = ["-b:v", s.bitrate, "-g", str(gop)]
    return [
        s.ffmpeg, "-hide_banner", "-nostats", "-loglevel", "warning",
        "-f", "nut", "-i", "pipe:0",
        "-map", "0:v:0",
        "-c:v", s.encoder, *enc_args,
        "-bf", "0",
        # Time-based keyframes: at most keyframe_interval_s apart whatever the frame rate.
        "-force_key_frames", f"expr:gte(t,n_forced*{key_every_s:.6f})",
        "-pix_fmt", "yuv420p",
        # Keep the input's exact timestamps: no shift to zero, no frame-rate resampling, and an
        # encoder time base equal to the input's (1/1_000_000) instead of 1/fps.
        "-copyts", "-fps_mode", "passthrough", "-enc_time_base", "-1",
        "-movflags", "frag_keyframe+delay_moov",
        "-frag_duration", str(max(1, int(s.fragment_s * 1e6))),
        "-use_editlist", "1", "-movie_timescale", str(TIME_BASE_US),
        # Hand each finished fragment to the file at once: without this ffmpeg keeps whole
        # seconds of video in its output buffer, which a crash of ffmpeg or a power cut loses.
        "-flush_packets", "1",
        *s.extra_output_args,
        "-f", "mp4", "-y", path,
    ]


class FFmpegEncoder(Encoder):
    """Frames -> NUT pipe -> system ffmpeg -> fragmented MP4. See the module docstring."""

    name = "ffmpeg"

    def __init__(
        self,
        settings: FFmpegSettings | None = None,
        *,
        queue_size: int | None = None,
        on_written: OnWritten | None = None,
        flush_rows: FlushRows | None = None,
    ) -> None:
        super().__init__(queue_size=queue_size, on_written=on_written, flush_rows=flush_rows)
        self.settings = settings or FFmpegSettings()
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._quiet = False  # stopped on purpose before any frame: its complaints are noise
        self._wfd: int | None = None
        self._pipe: Any = None
        self._nut: Any = None
        self._stream: Any = None
        self.returncode: int | None = None

    @property
    def command(self) -> list[str]:
        """The ffmpeg command line (valid once `open()` was called)."""
        return build_command(self.settings, self.fps_hint, str(self.path))

    # -- loop side ---------------------------------------------------------------------------
    async def _async_start(self) -> None:
        ok, why = await asyncio.to_thread(ffmpeg_available, self.settings.ffmpeg)  # PATH search
        if not ok:
            raise EncoderError(f"ffmpeg encoder: {why}")
        rfd, wfd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(wfd, _F_SETPIPE_SZ, 1 << 20)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=rfd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(wfd)
            raise EncoderError(f"ffmpeg encoder: cannot start {self.settings.ffmpeg!r}: {exc}") \
                from exc
        finally:
            os.close(rfd)  # the child has its copy; ours would hide EOF from it
        self._wfd = wfd
        self._stderr_task = asyncio.create_task(self._read_stderr(), name="ffmpeg-stderr")

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line and not self._quiet:
                self._stderr_tail.append(line)
                log.warning("ffmpeg (%s): %s", self.path.name if self.path else "?", line)

    async def _async_stop(self, failed: bool) -> None:
        if self._wfd is not None:  # thread never got to own it (open failed early)
            with contextlib.suppress(OSError):
                os.close(self._wfd)
            self._wfd = None
        proc = self._proc
        if proc is None:
            return
        s = self.settings
        try:
            await asyncio.wait_for(proc.wait(), s.exit_timeout_s)
        except TimeoutError:
            log.warning("ffmpeg did not exit %.0f s after end of input; terminating",
                        s.exit_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), s.kill_timeout_s)
            except TimeoutError:
                log.error("ffmpeg ignored SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._stderr_task is not None:
            try:
                await asyncio.wait_for(self._stderr_task, 5.0)
            except TimeoutError:
                self._stderr_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._stderr_task
            self._stderr_task = None
        self.returncode = proc.returncode
        broken = isinstance(self._error, _PipeBroken)
        if proc.returncode != 0 and self._error is None and self._written == 0 and not failed:
            # No frame was sent: ffmpeg was stopped before it read anything and writes no file.
            # Not a failure: there was nothing to record.
            log.info("ffmpeg: no frames for %s; no file written", self.path)
        elif (proc.returncode != 0 and self._error is None) or broken:
            # ffmpeg's own account of why it stopped, reported once (a broken pipe is its echo).
            if any("No space left on device" in line for line in self._stderr_tail):
                self._error = EncoderError(f"disk full: {self.path}")
            elif proc.returncode != 0:
                tail = " | ".join(self._stderr_tail) or "no output"
                self._error = EncoderError(f"ffmpeg exited with status {proc.returncode}: {tail}")
            log.error("%s", self._error)

    async def close(self) -> EncoderStats:
        """As `Encoder.close`; with no frame ever accepted ffmpeg is stopped before it sees an
        empty input (it would complain and write nothing anyway)."""
        if self.is_open and self._last_pts_us is None and self._proc is not None:
            self._quiet = True
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        return await super().close()

    async def _wait_thread(self) -> None:
        # The thread can only hang writing into a pipe nobody reads: a stuck ffmpeg. Terminating
        # the process breaks the pipe and frees the thread.
        assert self._done is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._done), self.settings.exit_timeout_s)
        except TimeoutError:
            log.error("ffmpeg is not reading its input; terminating it")
            if self._proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.terminate()
            await asyncio.shield(self._done)

    # -- thread side -------------------------------------------------------------------------
    def _thread_open(self) -> None:
        assert self._wfd is not None
        wfd, self._wfd = self._wfd, None
        # Unbuffered, and each write waits for the rows of the frames sent so far.
        self._pipe = GatedFile(wfd, self._flush_rows)  # closed in _thread_finish
        # The NUT header names the pixel format, so it is fixed by the first frame's unless set.
        self._nut = None

    def _start_nut(self, pixel_format: str) -> None:
        self._nut = av.open(self._pipe, mode="w", format="nut")
        stream = self._nut.add_stream("rawvideo")
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = pixel_format
        stream.time_base = Fraction(1, TIME_BASE_US)
        stream.codec_context.time_base = Fraction(1, TIME_BASE_US)
        self._stream = stream

    def _thread_encode(self, frame: Frame, pts_us: int, qdelay_ns: int, t_take_ns: int) -> None:
        if self._nut is None:
            self._start_nut(self.settings.input_pixel_format or frame.pixel_format)
        vf = av.VideoFrame.from_ndarray(frame.image, format=frame.pixel_format)
        vf.pts = pts_us
        vf.time_base = self._stream.codec_context.time_base
        # The row first: the frame's bytes enter the pipe only after it is flushed (rawvideo
        # gives one packet per frame, at once).
        self._emit(frame, pts_us, qdelay_ns, t_take_ns)
        try:
            for packet in self._stream.encode(vf):
                self._nut.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            if self._rows_error is not None:
                raise self._rows_error from None
            raise _PipeBroken(f"ffmpeg stopped reading frames ({exc})") from exc

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, _PipeBroken) and self._error is None:
            self._error = exc  # logged once ffmpeg's exit status and output are known
            return
        super()._fail(exc)

    def _thread_finish(self) -> None:
        err: BaseException | None = None
        try:
            if self._nut is not None:
                if self._error is None:
                    for packet in self._stream.encode(None):
                        self._nut.mux(packet)
                self._nut.close()
        except Exception as exc:
            err = exc
        finally:
            self._nut = None
            if self._pipe is not None:
                with contextlib.suppress(OSError):
                    self._pipe.close()  # EOF: ffmpeg finalises the MP4
                self._pipe = None
        if err is not None and not isinstance(err, OSError):
            raise err

