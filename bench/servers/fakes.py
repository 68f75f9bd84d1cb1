#!/usr/bin/env python3
"""Bench peers that need no GStreamer, one process per role (stdlib only).

  http  DIR   HTTP cameras: /mjpeg (multipart/x-mixed-replace, 10 fps, the
              JPEGs in DIR in a loop as if playing since the epoch; first frame
              at once), /snap.jpg (one JPEG, the one playing now), /auth (401 with a Basic challenge), anything else 404.
              Answers HEAD as a camera would (headers only).
  hang        a camera that hangs: accepts TCP connections, reads, never answers.
  sntp        an SNTP server (mode 4, stratum 2) answering with this host's clock.
  silent-udp  a UDP port that swallows every datagram (a hung NTP or DNS server).

Each binds 127.0.0.1 (port from --port, default 0 = free), prints `PORT n`,
and runs until SIGTERM or until stdin reaches EOF (no orphans if the bench dies).
"""
import argparse
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def exit_on_stdin_eof():
    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except Exception:
            pass
        os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


def serve_http(port, frames_dir):
    frames = [open(os.path.join(frames_dir, f), "rb").read()
              for f in sorted(os.listdir(frames_dir)) if f.endswith(".jpg")]
    assert frames, f"no .jpg in {frames_dir}"
    boundary = "benchframe"

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def _head(self, code, ctype, length=None, extra=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            if length is not None:
                self.send_header("Content-Length", str(length))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()

        def do_HEAD(self):
            self.route(body=False)

        def do_GET(self):
            self.route(body=True)

        def route(self, body):
            path = self.path.split("?", 1)[0]
            try:
                if path == "/mjpeg":
                    self._head(200, f"multipart/x-mixed-replace;boundary={boundary}")
                    if not body:
                        return
                    # A live camera: the stream starts at the frame playing now.
                    i = int(time.time() * 10)
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        f = frames[i % len(frames)]
                        self.wfile.write(
                            f"--{boundary}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(f)}\r\n\r\n".encode() + f + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(0.1)
                elif path == "/snap.jpg":
                    f = frames[int(time.time() * 10) % len(frames)]
                    self._head(200, "image/jpeg", len(f))
                    if body:
                        self.wfile.write(f)
                elif path == "/auth":
                    self._head(401, "text/plain", 0, [("WWW-Authenticate", 'Basic realm="cam"')])
                else:
                    self._head(404, "text/plain", 0)
            except (BrokenPipeError, ConnectionResetError):
                pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


def serve_hang(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    print(f"PORT {ls.getsockname()[1]}", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client gave up: forget it
                    sel.unregister(s)
                    s.close()


def serve_udp(port, answer):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    print(f"PORT {s.getsockname()[1]}", flush=True)
    ntp_epoch = 2208988800
    while True:
        data, peer = s.recvfrom(4096)
        if not answer or len(data) < 48:
            continue

        def ts(t):
            return struct.pack("!II", int(t) + ntp_epoch, int((t % 1) * 2**32))
        now = time.time()
        reply = bytearray(48)
        reply[0] = (0 << 6) | (4 << 3) | 4  # LI 0, VN 4, mode 4 (server)
        reply[1] = 2  # stratum
        reply[2] = data[2]
        reply[3] = 0xEC
        reply[12:16] = b"BNCH"
        reply[16:24] = ts(now)
        reply[24:32] = data[40:48]  # originate = client's transmit
        reply[32:40] = ts(now)
        reply[40:48] = ts(time.time())
        s.sendto(bytes(reply), peer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["http", "hang", "sntp", "silent-udp"])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    exit_on_stdin_eof()
    if a.role == "http":
        serve_http(a.port, a.dir)
    elif a.role == "hang":
        serve_hang(a.port)
    else:
        serve_udp(a.port, a.role == "sntp")


if __name__ == "__main__":
    main()
