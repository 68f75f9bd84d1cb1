#!/usr/bin/env python3
"""A stamped camera for the live-latency bench (issue 21).

Writes raw yuv420p frames to standard output at a fixed rate; each frame's
picture carries the wall-clock time (CLOCK_REALTIME, ms) at which it was
written, readable back from pixels after lossy compression:

* the top 64 rows are two rows of 20 blocks, each 32x32 pixels, black (luma
  16) or white (luma 235): 40 bits, most significant first. Bits 0-31 are
  the time in ms modulo 2^32, bits 32-39 a CRC-8 (polynomial 0x07) of those
  four bytes (big endian), so a misread block is caught, not turned into a
  wrong latency. A reader unwraps the 32 bits with its own clock (the
  stamp is seconds old at most, the wrap is 49 days).
* below, on mid grey, a white 64x64 square moves 8 pixels a frame (so the
  encoders see motion and code P-frames, not a still picture).

The time is taken just before the frame's bytes are written into the pipe:
the moment a real camera would hand over a finished frame. Frames are paced
on an absolute schedule (no drift); a late frame is written at once.

Used by bench/live/stamped-rpicam-vid (our path) and bench/live_latency.py
(the pistreaming path). Decoding lives in bench/live/driver.mjs.
"""

import argparse
import os
import sys
import time

BLOCK = 32
BLOCKS_PER_ROW = 20
BLACK, WHITE, GREY = 16, 235, 110
SQUARE = 64


def crc8(data: bytes) -> int:
    """CRC-8, polynomial x^8+x^2+x+1 (0x07), initial value 0."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bits(ms: int) -> list:
    """The 40 bits of a stamp for wall-clock time `ms`."""
    v = ms % (1 << 32)
    word = (v << 8) | crc8(v.to_bytes(4, "big"))
    return [(word >> (39 - i)) & 1 for i in range(40)]


def frames(width: int, height: int, fps: float, out, count: int = 0) -> None:
    """Writes frames to the binary file `out` until it closes (or `count`)."""
    if width < BLOCK * BLOCKS_PER_ROW or height < 2 * BLOCK + SQUARE + 16:
        raise SystemExit(f"stamp: {width}x{height} is too small for the stamp (>= 640x144)")
    chroma = bytes([128]) * ((width // 2) * (height // 2) * 2)
    grey_row = bytes([GREY]) * width
    sq_top = 2 * BLOCK + (height - 2 * BLOCK - SQUARE) // 2
    period = 1.0 / fps
    start = time.monotonic()
    n = 0
    while count == 0 or n < count:
        due = start + n * period
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        x = (n * 8) % (width - SQUARE)
        sq_row = grey_row[:x] + bytes([WHITE]) * SQUARE + grey_row[x + SQUARE:]
        body = (grey_row * (sq_top - 2 * BLOCK) + sq_row * SQUARE
                + grey_row * (height - sq_top - SQUARE))
        ms = time.time_ns() // 1_000_000
        bits = stamp_bits(ms)
        head = b""
        for r in range(2):
            row = b"".join(bytes([WHITE if b else BLACK]) * BLOCK
                           for b in bits[r * BLOCKS_PER_ROW:(r + 1) * BLOCKS_PER_ROW])
            row += grey_row[len(row):]
            head += row * BLOCK
        try:
            out.write(head + body + chroma)
            out.flush()
        except (BrokenPipeError, ValueError):
            return
        n += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--count", type=int, default=0, help="frames, 0 = until the pipe closes")
    a = ap.parse_args()
    try:
        frames(a.width, a.height, a.fps, sys.stdout.buffer, a.count)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            sys.stdout.close()
        except BrokenPipeError:
            pass
        os._exit(0)


if __name__ == "__main__":
    main()
