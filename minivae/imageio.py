"""Image grids written as PNG with the standard library (zlib + struct).

Pillow is not a dependency; a grayscale or RGB 8-bit PNG needs only a few chunks.
"""
from __future__ import annotations

import struct
import zlib

import numpy

from .fileio import atomic_write_bytes  # noqa: F401  (re-exported: the one atomic writer)


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


# A 3×5 pixel font for row labels (lower-case letters, digits, a few signs): each glyph is
# five rows of three bits. Enough to say which row is which without an image library.
_FONT = dict(zip("abcdefghijklmnopqrstuvwxyz0123456789-.=/ ", (
    "010101111101101", "110101110101110", "011100100100011", "110101101101110", "111100110100111",
    "111100110100100", "011100101101011", "101101111101101", "111010010010111", "001001001101010",
    "101101110101101", "100100100100111", "101111111101101", "110101101101101", "010101101101010",
    "110101110100100", "010101101110011", "110101110101101", "011100010001110", "111010010010010",
    "101101101101111", "101101101101010", "101101111111101", "101101010101101", "101101010010010",
    "111001010100111", "111101101101111", "010110010010111", "110001010100111", "110001010001110",
    "101101111001001", "111100110001110", "011100110101010", "111001010010010", "010101010101010",
    "010101011001110", "000000111000000", "000000000000010", "000111000111000", "001001010100100",
    "000000000000000")))


def _label_column(labels, rows: int, cell: int, padding: int) -> numpy.ndarray:
    """A (rows·(cell+padding)+padding, width) white strip with ``labels[r % len(labels)]`` written,
    in dark 3×5 glyphs, at the top of each grid row."""
    text = [labels[r % len(labels)].lower() for r in range(rows)]
    width = 4 * max(len(t) for t in text) + 3
    strip = numpy.ones((rows * (cell + padding) + padding, width), dtype=numpy.float32)
    for r, label in enumerate(text):
        top = padding + r * (cell + padding) + max(0, (cell - 5) // 2)
        for i, ch in enumerate(label):
            bits = _FONT.get(ch, _FONT[" "])
            glyph = numpy.array([int(b) for b in bits], dtype=numpy.float32).reshape(5, 3)
            strip[top:top + 5, 2 + 4 * i:5 + 4 * i] = 1.0 - 0.85 * glyph
    return strip


def save_grid(path, images, nrow: int | None = None, scale: int = 1, row_labels=None) -> None:
    """Write a grid of (N, C, H, W) images; ``scale`` > 1 enlarges pixels (nearest) for viewing.

    ``row_labels`` (e.g. ``["original", "reconstruction"]``) are written, cycling, left of the rows.
    """
    grid = image_grid(images, nrow)
    if row_labels:
        n, c, h, _ = numpy.asarray(images).shape
        rows = -(-n // (nrow or int(numpy.ceil(numpy.sqrt(n)))))
        strip = _label_column(row_labels, rows, h, 2)
        grid = numpy.concatenate([numpy.repeat(strip[None], grid.shape[0], axis=0), grid], axis=2)
    if scale > 1:
        grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    write_png(path, grid)
