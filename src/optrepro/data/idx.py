"""Reader for the IDX format of (Fashion-)MNIST, strict so a truncated download fails loudly, not silently."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# Type byte of the IDX header -> big-endian numpy dtype (LeCun's MNIST page lists these codes).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """The file is not a valid IDX file; the message names the file and what is wrong."""


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) into an array with the shape its header declares."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise IdxFormatError(f"{path}: corrupt gzip stream ({err}); download the file again") from err
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Validate the header (zero bytes, type code, dimension sizes) against the payload length, then decode."""
    if len(raw) < 4:
        raise IdxFormatError(f"{source}: {len(raw)} bytes is too short for an IDX header (needs 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{source}: bad magic number {raw[:4].hex()} (IDX files start with two zero bytes)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in IDX_DTYPES:
        raise IdxFormatError(
            f"{source}: unknown IDX type code 0x{type_code:02x}; known: {sorted(hex(c) for c in IDX_DTYPES)}"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IdxFormatError(f"{source}: header declares {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_len
    if payload != expected:
        raise IdxFormatError(
            f"{source}: header shape {shape} needs {expected} data bytes but the file has {payload} "
            "(truncated or corrupt download; fetch it again)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
