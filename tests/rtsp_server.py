"""A real RTSP camera for tests: GStreamer's gst-rtsp-server serving a video file in a loop as H.264.

Run it with Debian's /usr/bin/python3 (python3-gi lives there, not in the project's venv):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --video vtest.avi [--user U --password P]

It prints `ready rtsp://127.0.0.1:PORT/cam` once it listens. The file is decoded in a loop and pushed
into the served pipeline as a live source (like a camera: frames are timestamped when they are made,
so after the process was stopped with SIGSTOP the stream goes on from "now"). Each frame carries the
wall-clock time it was made: as text (clockoverlay, for people) and as a row of 48 black/white blocks
along the top edge (4 marker bits 1010, then the epoch time in ms on 44 bits, most significant
first), which `tests/rtsp_support.py: content_time` reads back from a decoded frame.

x264enc runs with sliced-threads=false: with sliced threads decoders conceal half of each I-frame.

RTCP sender reports (which map RTP times to the camera's wall clock) are sent as gst-rtsp-server
does by default; `--no-rtcp` sends none (a camera without them); `--sr-offset S` puts the SRs' wall
clock S seconds off the real one (a camera whose clock is wrong by S), while the time burned into the
frames stays the real one: the SR times are NTP time from the media's own clock (rtpbin
`ntp-time-source=clock-time`), a realtime clock calibrated to read NTP time plus S.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import warnings

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, GObject, Gst, GstRtspServer  # noqa: E402

NTP_EPOCH_OFFSET_S = 2208988800  # 1900-01-01 to 1970-01-01
MARKER = (1, 0, 1, 0)
TIME_BITS = 44
BLOCKS = len(MARKER) + TIME_BITS


def time_strip_rows(width: int, ms: int) -> tuple[bytes, int]:
    """One luma row of the time strip and the strip's height (= block width)."""
    block = width // BLOCKS
    bits = list(MARKER) + [(ms >> (TIME_BITS - 1 - i)) & 1 for i in range(TIME_BITS)]
    row = b"".join((b"\xeb" if bit else b"\x10") * block for bit in bits)
    return row + b"\x10" * (width - len(row)), block


class FileLoop:
    """Decodes the video file to raw I420 frames, starting over at its end."""

    def __init__(self, video: str, width: int, height: int) -> None:
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{video}" ! decodebin ! videoconvert ! videoscale ! '
            f"video/x-raw,format=I420,width={width},height={height} ! appsink name=sink sync=false max-buffers=4")
        self.sink = self.pipeline.get_by_name("sink")
        self.pipeline.set_state(Gst.State.PLAYING)

    def next_frame(self) -> bytes:
        for _ in range(3):
            sample = self.sink.emit("try-pull-sample", 5 * Gst.SECOND)
            if sample is not None:
                buf = sample.get_buffer()
                return buf.extract_dup(0, buf.get_size())
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        raise RuntimeError("the video file gives no frames")


class Camera:
    """The served media: every prepared media's appsrc gets each new frame."""

    def __init__(self, width: int, height: int, fps: int) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.sources: set[Gst.Element] = set()
        self.lock = threading.Lock()

    def launch(self) -> str:
        caps = f"video/x-raw,format=I420,width={self.width},height={self.height},framerate={self.fps}/1"
        return (f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} ! "
                "clockoverlay halignment=right valignment=bottom time-format=%H:%M:%S font-desc=24 ! "
                f"x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false key-int-max={self.fps} "
                "bitrate=2000 ! rtph264pay name=pay0 pt=96 config-interval=1 )")

    def on_media(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_child_by_name("src")
        with self.lock:
            self.sources.add(src)
        media.connect("unprepared", lambda _m: self._drop(src))

    def _drop(self, src: Gst.Element) -> None:
        with self.lock:
            self.sources.discard(src)

    def push(self, frame: bytes) -> None:
        with self.lock:
            sources = list(self.sources)
        for src in sources:
            src.emit("push-buffer", Gst.Buffer.new_wrapped(frame))


def clock_time_media() -> type:
    """A media class whose RTCP sender reports take their NTP time from the media's clock (made on
    demand: registering it makes GLib warn about a signal of the base class it does not touch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        class ClockTimeMedia(GstRtspServer.RTSPMedia):
            def do_setup_rtpbin(self, rtpbin: Gst.Element) -> bool:
                rtpbin.set_property("ntp-time-source", "clock-time")
                return True

    return ClockTimeMedia


def ntp_clock(offset_s: float) -> Gst.Clock:
    """A realtime clock that reads NTP time (seconds since 1900) plus `offset_s`."""
    clock = GObject.new(Gst.SystemClock, clock_type=Gst.ClockType.REALTIME)
    internal = clock.get_internal_time()
    clock.set_calibration(internal, internal + int((NTP_EPOCH_OFFSET_S + offset_s) * Gst.SECOND), 1, 1)
    return clock


def stamp(frame: bytes, width: int, ms: int) -> bytes:
    row, height = time_strip_rows(width, ms)
    return row * height + frame[width * height:]


def pump(loop: FileLoop, camera: Camera) -> None:
    """Pushes frames at the camera's rate from the wall clock; never bursts to catch up after a stop."""
    period = 1.0 / camera.fps
    due = time.monotonic()
    while True:
        frame = loop.next_frame()
        due += period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            due = time.monotonic()  # stopped or slow: go on from now, like a camera
        camera.push(stamp(frame, camera.width, int(time.time() * 1000)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--video", required=True, help="video file to serve in a loop")
    parser.add_argument("--path", default="/cam", help="mount point (default /cam)")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--user", help="require these basic-auth credentials")
    parser.add_argument("--password", default="")
    parser.add_argument("--no-rtcp", action="store_true", help="send no RTCP (no sender reports)")
    parser.add_argument("--sr-offset", type=float, help="sender reports' wall clock this many seconds off")
    args = parser.parse_args()

    Gst.init(None)
    camera = Camera(args.width, args.height, args.fps)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(camera.launch())
    factory.set_shared(True)
    factory.connect("media-configure", camera.on_media)
    if args.no_rtcp:
        factory.set_enable_rtcp(False)
    if args.sr_offset is not None:
        factory.set_media_gtype(clock_time_media())
        factory.set_clock(ntp_clock(args.sr_offset))
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(args.user, "media.factory.access", True)
        permissions.add_permission_for_role(args.user, "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {args.port}")
    threading.Thread(target=pump, args=(FileLoop(args.video, args.width, args.height), camera),
                     daemon=True).start()
    main_loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda: main_loop.quit() or False)
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    main_loop.run()


if __name__ == "__main__":
    main()
