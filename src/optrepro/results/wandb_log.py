"""Reads a W&B run's transaction log (`run-<id>.wandb`) without a network or a W&B server.

Offline runs keep config, summary and history only in this file (recent W&B versions no longer
write wandb-summary.json offline, and no longer ship a Python reader). The format is LevelDB's log
format: a 7-byte header, then 32 KiB blocks of chunks `crc32 (4) | length (2) | type (1) | data`,
where chunks of type FULL, or FIRST + MIDDLE* + LAST, form one protobuf `Record`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

HEADER = b":W&B\xe1\xbe\x00"  # ident ":W&B", magic 0xBEE1 (little endian), version 0
BLOCK_SIZE = 32 * 1024
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbLogError(ValueError):
    """A file that is not a W&B transaction log."""


def iter_log_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The protobuf records of a .wandb file, in the order the run wrote them."""
    data = Path(path).read_bytes()
    if not data.startswith(HEADER):
        raise WandbLogError(f"{path}: not a W&B transaction log (header {data[:7]!r}, expected {HEADER!r})")
    position, pending = len(HEADER), b""
    while position + CHUNK_HEADER.size <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:
            position += left_in_block
            continue
        _crc, length, chunk_type = CHUNK_HEADER.unpack_from(data, position)
        position += CHUNK_HEADER.size
        if chunk_type == 0 and length == 0:  # zero padding at the end of a block
            position += left_in_block - CHUNK_HEADER.size
            continue
        if position + length > len(data):  # a run killed while writing: keep what was complete
            return
        chunk = data[position : position + length]
        position += length
        if chunk_type in (FIRST, MIDDLE):
            pending = (pending if chunk_type == MIDDLE else b"") + chunk
            continue
        payload = pending + chunk if chunk_type == LAST else chunk
        pending = b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record
