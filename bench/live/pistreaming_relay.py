#!/usr/bin/env python3
"""pistreaming's server for the live-latency bench (issue 21), without the
Pi camera: the same pieces, written anew (pistreaming's own server.py needs
picamera and Python 2's BaseHTTPServer, neither of which runs here).

As in waveform80/pistreaming's server.py:
* the MPEG-1 elementary stream (`ffmpeg ... -f mpeg1video -b 800k -`) is
  read 512 bytes at a time and each piece is broadcast to every websocket
  client with ws4py's manager (ws4py's wsgiref server, one thread);
* each new websocket client first gets the 8-byte jsmpg.js header
  (b"jsmp", width, height as big-endian u16);
* a plain HTTP server serves index.html and jsmpg.js.
What differs: the encoder's output arrives on our standard input (the bench
starts camera | encoder | this relay, so each process's CPU is read apart)
instead of from a child this process feeds with picamera's frames; both
servers listen on 127.0.0.1 with ports the kernel picks, printed as one JSON
line on standard output.

Usage: pistreaming_relay.py WIDTH HEIGHT JSMPG_JS INDEX_HTML < mpeg1video
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from struct import Struct
from wsgiref.simple_server import make_server

from ws4py.server.wsgirefserver import WebSocketWSGIRequestHandler, WSGIServer
from ws4py.server.wsgiutils import WebSocketWSGIApplication
from ws4py.websocket import WebSocket

WIDTH, HEIGHT = int(sys.argv[1]), int(sys.argv[2])
JSMPG = open(sys.argv[3], "rb").read()
INDEX = open(sys.argv[4], "rb").read()
HEADER = Struct(">4sHH").pack(b"jsmp", WIDTH, HEIGHT)


class Client(WebSocket):
    def opened(self):
        self.send(HEADER, binary=True)


class Files(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            body, ctype = INDEX.replace(b"@WS_PORT@", str(ws.server_port).encode()), "text/html; charset=utf-8"
        elif path == "/jsmpg.js":
            body, ctype = JSMPG, "application/javascript"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ws = make_server("127.0.0.1", 0, server_class=WSGIServer, handler_class=WebSocketWSGIRequestHandler,
                 app=WebSocketWSGIApplication(handler_cls=Client))
ws.initialize_websockets_manager()
http = HTTPServer(("127.0.0.1", 0), Files)
threading.Thread(target=ws.serve_forever, daemon=True).start()
threading.Thread(target=http.serve_forever, daemon=True).start()
print(json.dumps({"http_port": http.server_port, "ws_port": ws.server_port}), flush=True)

src = sys.stdin.buffer.raw
while True:
    buf = src.read(512)
    if not buf:
        break
    ws.manager.broadcast(buf, binary=True)
os._exit(0)
