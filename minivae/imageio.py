"""Image grids written as PNG with the standard library (zlib + struct).

Pillow is not a dependency; a grayscale or RGB 8-bit PNG needs only a few chunks.
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib

import numpy


def image_grid(images, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> numpy.ndarray:
    """Tile (N, C, H, W) images in [0, 1] into one (C, H', W') image, ``nrow`` per row."""
    images = numpy.asarray(images, dtype=numpy.float32)
    if images.ndim != 4:
        raise ValueError(f"image_grid expects (N, C, H, W) images, got shape {images.shape}")
    n, c, h, w = images.shape
    nrow = nrow or int(numpy.ceil(numpy.sqrt(n)))
    rows = int(numpy.ceil(n / nrow))
    grid = numpy.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value,
                      dtype=numpy.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image) -> bytes:
    """PNG bytes of a (C, H, W) or (H, W) float image in [0, 1] (C = 1 or 3)."""
    image = numpy.asarray(image, dtype=numpy.float32)
    if image.ndim == 3:
        if image.shape[0] not in (1, 3):
            raise ValueError(f"encode_png takes 1 or 3 channels, got {image.shape[0]}")
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    pixels = (numpy.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(numpy.uint8)
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2  # grayscale | truecolour
    rows = pixels.reshape(h, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def write_png(path, image) -> None:
    """Write ``image`` atomically (temporary file, then rename)."""
    atomic_write_bytes(path, encode_png(image))


def save_grid(path, images, nrow: int | None = None, scale: int = 1) -> None:
    """Write a grid of (N, C, H, W) images; ``scale`` > 1 enlarges pixels (nearest) for viewing."""
    grid = image_grid(images, nrow)
    if scale > 1:
        grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    write_png(path, grid)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
