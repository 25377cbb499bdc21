#!/usr/bin/env python3
"""Writes the package icon as a PNG: make-icon.py SIZE OUT.PNG.

Drawn here with the standard library (zlib, struct) so the build needs no image tools and
the repository carries no binary blobs: a calendar page (red header, grid of days, one day
marked blue) on a rounded blue tile. DSM 7 wants 64x64 (PACKAGE_ICON.PNG) and 256x256
(PACKAGE_ICON_256.PNG).
"""
import struct
import sys
import zlib

BLUE = (38, 99, 235, 255)
WHITE = (255, 255, 255, 255)
RED = (220, 53, 69, 255)
GREY = (203, 213, 225, 255)
CLEAR = (0, 0, 0, 0)


def pixel(x, y, n):
    """The RGBA colour at (x, y) of an n×n icon, in units of n/16 so every size looks alike."""
    u = n / 16.0
    r = 3 * u  # corner radius of the tile
    cx = min(max(x + 0.5, r), n - r)
    cy = min(max(y + 0.5, r), n - r)
    if (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 > r * r:
        return CLEAR
    gx, gy = x / u, y / u  # grid coordinates 0..16
    if not (3 <= gx < 13 and 3 <= gy < 13):
        return BLUE
    if gy < 5.5:
        return RED
    # 3 rows × 4 columns of day cells, the second cell of the middle row marked.
    col, row = int((gx - 3) / 2.5), int((gy - 5.5) / 2.5)
    fx, fy = (gx - 3) - col * 2.5, (gy - 5.5) - row * 2.5
    if 0.5 <= fx < 2.0 and 0.5 <= fy < 2.0:
        return BLUE if (col, row) == (1, 1) else GREY
    return WHITE


def png(n):
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y, n)) for x in range(n)) for y in range(n)
    )

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", n, n, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make-icon.py SIZE OUT.PNG")
    with open(sys.argv[2], "wb") as f:
        f.write(png(int(sys.argv[1])))
