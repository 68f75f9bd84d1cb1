#!/usr/bin/python3
"""Bench RTSP cameras (GStreamer gst-rtsp-server via PyGObject; Debian's python3).

Unlike tests/servers/rtsp_server.py, media here is SHARED: one live encoder per
mount, whatever the number of clients, so a 1000-stream bench does not start
1000 encoders on a 2-core machine. Each bench stream still gets its own URL
(`/h264?cam=17`): the query string is dropped from the media key, so all those
URLs share the mount's one pipeline, like many viewers of one real camera.
A client joining mid-GOP waits for the next key frame (GOP = 1 s), as it would
with a real camera.

Prints `PORT n`, serves until SIGTERM/SIGINT or stdin EOF.

Mounts: /h264, /h265, /mjpeg (JPEG over RTP), /audioonly (no video: a failure
for a frame check), /auth (H.264 behind Basic auth: admin / bench-Pa55).
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer  # noqa: E402

# The serving loop (attach, PORT line, signals, stdin EOF) is the test server's.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "servers"))
from rtsp_server import serve  # noqa: E402

RAW = "video/x-raw,format=I420,width=320,height=240,framerate=15/1"
SRC = f"videotestsrc is-live=true pattern=ball animation-mode=wall-time ! {RAW}"
MOUNTS = {
    "/h264": f"{SRC} ! x264enc key-int-max=15 tune=zerolatency speed-preset=ultrafast"
             " ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "/h265": f"{SRC} ! x265enc key-int-max=15 tune=zerolatency speed-preset=ultrafast"
             " ! rtph265pay name=pay0 pt=96 config-interval=-1",
    "/mjpeg": f"{SRC} ! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26",
    "/audioonly": "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1"
                  " ! alawenc ! rtppcmapay name=pay0 pt=8",
    "/auth": f"{SRC} ! x264enc key-int-max=15 tune=zerolatency speed-preset=ultrafast"
             " ! rtph264pay name=pay0 pt=96 config-interval=-1",
}


class SharedFactory(GstRtspServer.RTSPMediaFactory):
    """Shares one media per mount: the key ignores the query string."""

    def do_gen_key(self, url):
        return url.abspath


def main():
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.set_backlog(1024)

    auth = GstRtspServer.RTSPAuth()
    anon = GstRtspServer.RTSPToken()
    anon.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
    auth.set_default_token(anon)
    user = GstRtspServer.RTSPToken()
    user.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic("admin", "bench-Pa55"), user)
    server.set_auth(auth)

    mounts = server.get_mount_points()
    for path, launch in MOUNTS.items():
        f = SharedFactory()
        f.set_launch(f"( {launch} )")
        f.set_shared(True)
        f.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        perms = GstRtspServer.RTSPPermissions.new()
        for role in ("anonymous", "user"):
            perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
            ok = path != "/auth" or role == "user"
            perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, ok)
        f.set_permissions(perms)
        mounts.add_factory(path, f)

    serve(server, "rtsp_cams", exit_on_stdin_eof=True)


if __name__ == "__main__":
    main()
