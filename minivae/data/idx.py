"""The IDX file format (LeCun et al., the MNIST database), gzip-compressed or raw.

Header, big-endian: two zero bytes, one type byte (0x08 = uint8, 0x09 = int8,
0x0B = int16, 0x0C = int32, 0x0D = float32, 0x0E = float64), one byte giving the
number of dimensions d, then d uint32 sizes; the data follows in row-major
order. MNIST images are ``00 00 08 03 | N | 28 | 28``, labels ``00 00 08 01 | N``.

The reader checks that the data length is exactly what the header announces,
so a truncated download or a file with a tampered header fails with a message
rather than producing silently wrong arrays.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .dataset import DataError

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(DataError):
    """An IDX file is malformed, truncated, or its header disagrees with its size."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(f"{path}: the gzip stream ends early (the file is truncated); "
                       "delete it and download it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise IDXError(f"{path}: corrupt gzip data ({exc}); delete it and download it again") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode one uncompressed IDX blob into a native-endian array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IDXError(f"{source}: not an IDX file (it must start with bytes 00 00, "
                       f"found {data[:4].hex(' ') or 'nothing'})")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise IDXError(f"{source}: unknown IDX data type 0x{code:02X}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise IDXError(f"{source}: IDX header announces {ndim} dimensions but the file "
                       f"has only {len(data)} bytes")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise IDXError(f"{source}: IDX file is {what}: header says {' x '.join(map(str, dims))} "
                       f"items of {dtype.itemsize} byte(s) = {expected:,} data bytes, "
                       f"found {found:,}; delete it and download it again")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw). Checksums are checked by the caller."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (used by tests and to export data)."""
    array = np.asarray(array)
    codes = {(t.kind, t.itemsize): code for code, t in _TYPES.items()}
    code = codes.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + array.astype(_TYPES[code], copy=False).tobytes()
