#!/usr/bin/python3
"""StreamPulse test RTSP server (GStreamer gst-rtsp-server via PyGObject).

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0).
Binds 127.0.0.1 on a port chosen by the OS, prints one line `PORT <n>` on
stdout, then serves until SIGTERM/SIGINT (or, with --exit-on-stdin-eof, until
its parent closes stdin, so a killed test run leaves no orphan behind).
`--port N` binds a fixed port instead (only for `make run`'s demo cameras);
`--address A` binds A instead of 127.0.0.1 (an address in a test's own netns).

Mounts (all live 320x240 @ 15 fps unless noted; media is NOT shared, so every
client gets its own pipeline: no 503 on concurrent DESCRIBEs, and every client
starts on a key frame). The picture is a moving ball (on slate blue, so a
thumbnail is not black) placed by the wall clock
(`animation-mode=wall-time`), so two sessions a few seconds apart see two
different pictures, as with a live camera (a frame-counted picture starts the
same in every session and would read as frozen). The ball is drawn at
160x120 and scaled up (videotestsrc's ball has a fixed 20 px radius): at
320x240 it covered 1.6 % of the picture, under the 2 % of changed samples
that tells two pictures apart, so two checks that caught it in overlapping
places read as frozen (seen in CI). At 160x120 it covers 6.5 %:
  /h264      H.264 (x264enc), anonymous
  /h265      H.265 (x265enc), anonymous
  /mjpeg     JPEG over RTP (RFC 2435), anonymous
  /basic     H.264, Basic auth only  (admin / s3cret-Pa55)
  /digest    H.264, Digest auth only (admin / s3cret-Pa55)
  /tcponly   H.264, RTP over the RTSP connection only (UDP SETUP -> 461)
  /udponly   H.264, RTP over UDP only (TCP SETUP -> 461)
  /ends      H.264 that sends 8 frames (~0.5 s), then EOS
  /longgop   H.264 with key frames 10 s apart (longer than a probe's timeout)
  /solid     H.264 of a solid grey picture (a blank camera)
  /still     H.264 of a still test card (SMPTE bars: a frozen camera)
  /mjpegbars JPEG over RTP of the still test card at quality 95 (about 5 times
             the bytes of /mjpeg's frames: fills a stalled viewer's socket soon)
  /scene     H.264 whose picture a line on stdin switches for the sessions
             that start after it: `scene moving` (the ball, at first),
             `scene still` (frozen), `scene black` (lens covered)
  /audioonly PCMA (G.711 A-law) audio, no video track at all
  /h264opus  H.264 video plus an Opus audio track (a track retina cannot depacketize)
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

USER, PASSWORD = "admin", "s3cret-Pa55"

# The framerate in the caps ends up in the SPS VUI timing info / SDP.
RAW = "video/x-raw,format=I420,width=320,height=240,framerate=15/1"


BALL = "pattern=ball animation-mode=wall-time background-color=0xff305070"
# The ball's picture, drawn small and scaled up (see the module docs).
SMALL = "video/x-raw,format=I420,width=160,height=120,framerate=15/1 ! videoscale"


def src(opts=BALL):
    """A live test picture; `opts` are extra videotestsrc properties."""
    small = f" ! {SMALL}" if opts == BALL else ""
    return f"videotestsrc is-live=true {opts}{small} ! {RAW}"


SRC = src()
# `scene <name>` on stdin: the videotestsrc properties of /scene's next sessions.
SCENES = {
    "moving": {"pattern": "ball", "animation-mode": "wall-time", "background-color": "0xff305070"},
    "still": {"pattern": "smpte"},
    "black": {"pattern": "black"},
}
scene = {"now": "moving"}
H264 = ("x264enc key-int-max=15 tune=zerolatency speed-preset=ultrafast"
        " ! rtph264pay name=pay0 pt=96 config-interval=-1")
H265 = ("x265enc key-int-max=15 tune=zerolatency speed-preset=ultrafast"
        " ! rtph265pay name=pay0 pt=96 config-interval=-1")
# rtpjpegpay needs jpegenc fed I420, or it rejects frames ("Invalid component").
JPEG = "jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26"
PCMA = "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay0 pt=8"
OPUS = "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay name=pay1 pt=97"

LOWER_TCP = GstRtsp.RTSPLowerTrans.TCP
LOWER_UDP = GstRtsp.RTSPLowerTrans.UDP

# path -> (launch line, options)
MOUNTS = {
    "/h264": (f"{SRC} ! {H264}", {}),
    "/h265": (f"{SRC} ! {H265}", {}),
    "/mjpeg": (f"{SRC} ! {JPEG}", {}),
    "/basic": (f"{SRC} ! {H264}", {"auth": "basic"}),
    "/digest": (f"{SRC} ! {H264}", {"auth": "digest"}),
    "/tcponly": (f"{SRC} ! {H264}", {"protocols": LOWER_TCP}),
    "/udponly": (f"{SRC} ! {H264}", {"protocols": LOWER_UDP}),
    "/ends": (f"{src('num-buffers=8')} ! {H264}", {}),
    # Key frames 10 s apart (150 frames at 15 fps): longer than a probe's timeout.
    "/longgop": (f"{SRC} ! {H264.replace('key-int-max=15', 'key-int-max=150')}", {}),
    "/solid": (f"{src('pattern=solid-color foreground-color=0xff808080')} ! {H264}", {}),
    "/still": (f"{src('pattern=smpte')} ! {H264}", {}),
    "/mjpegbars": (f"{src('pattern=smpte')} ! {JPEG.replace('quality=70', 'quality=95')}", {}),
    "/scene": (f"videotestsrc name=scene is-live=true ! {SMALL} ! {RAW} ! {H264}", {"scene": True}),
    "/audioonly": (PCMA, {}),
    "/h264opus": (f"{SRC} ! {H264}  {OPUS}", {}),  # two branches: pay0 + pay1
}

# Roles carried by tokens. Anonymous clients get the default token (role "anonymous").
ROLES = ("anonymous", "basic-user", "digest-user")


class Auth(GstRtspServer.RTSPAuth):
    """Challenges with Basic on /basic and Digest on /digest (RTSPAuth's methods are global)."""

    def do_generate_authenticate_header(self, ctx):
        path = ctx.uri.abspath if ctx.uri else ""
        method = GstRtsp.RTSPAuthMethod.DIGEST if path.startswith("/digest") else GstRtsp.RTSPAuthMethod.BASIC
        self.set_supported_methods(method)  # safe: all clients run in the one main context
        GstRtspServer.RTSPAuth.do_generate_authenticate_header(self, ctx)


def token(role):
    t = GstRtspServer.RTSPToken()  # new() is varargs, not introspectable
    t.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    return t


def permissions(allowed_role):
    """Every role may *access* (see) a mount, so the check doesn't answer 404; only
    `allowed_role` may *construct* it: the others get 401 plus a challenge."""
    perms = GstRtspServer.RTSPPermissions.new()
    for role in ROLES:
        perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        ok = allowed_role is None or role == allowed_role
        perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, ok)
    return perms


def configure_scene(_factory, media):
    """Gives a new /scene session the picture `scene` names now."""
    el = media.get_element().get_by_name("scene")
    for k, v in SCENES[scene["now"]].items():
        Gst.util_set_object_arg(el, k, v)


def on_stdin_line(line):
    """`scene <name>` switches /scene; other lines are ignored."""
    words = line.split()
    if len(words) == 2 and words[0] == "scene" and words[1] in SCENES:
        scene["now"] = words[1]
        print(f"SCENE {words[1]}", flush=True)


def main():
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    args = sys.argv[1:]
    # Loopback, or (--address) an address of a network namespace a test made.
    server.set_address(args[args.index("--address") + 1] if "--address" in args else "127.0.0.1")
    # Tests let the OS pick the port; `make run`'s demo passes --port 18554.
    port = args[args.index("--port") + 1] if "--port" in args else "0"
    server.set_service(port)
    server.set_backlog(128)  # default 5 drops SYNs under concurrent tests

    auth = Auth()
    auth.set_default_token(token("anonymous"))
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USER, PASSWORD), token("basic-user"))
    auth.add_digest(USER, PASSWORD, token("digest-user"))
    server.set_auth(auth)

    mounts = server.get_mount_points()
    for path, (launch, opts) in MOUNTS.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( {launch} )")
        factory.set_shared(False)
        if "protocols" in opts:
            factory.set_protocols(opts["protocols"])
        want = {"basic": "basic-user", "digest": "digest-user"}.get(opts.get("auth"))
        factory.set_permissions(permissions(want))
        if opts.get("scene"):
            factory.connect("media-configure", configure_scene)
        mounts.add_factory(path, factory)

    serve(server, "rtsp_server", "--exit-on-stdin-eof" in sys.argv[1:])


def serve(server, name, exit_on_stdin_eof):
    """Attaches `server`, prints `PORT n` and runs until SIGTERM/SIGINT (or
    stdin EOF when asked). Also used by bench/servers/rtsp_cams.py."""
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        sys.exit(f"{name}: attach failed")
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, lambda: loop.quit() or GLib.SOURCE_REMOVE)
    if exit_on_stdin_eof:
        def on_stdin(ch, _cond):
            line = ch.readline()
            if not line:
                loop.quit()
                return False
            on_stdin_line(line)
            return True
        GLib.io_add_watch(GLib.IOChannel.unix_new(0), GLib.PRIORITY_DEFAULT,
                          GLib.IOCondition.IN | GLib.IOCondition.HUP, on_stdin)
    print(f"PORT {server.get_bound_port()}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
