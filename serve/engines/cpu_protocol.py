"""The wire format between the server and the CPU engine process: length-prefixed `marshal` frames on a socket.

A message is a tuple of plain values (str, int, float, bytes, None, lists, tuples, dicts).  One frame is a 4-byte
big-endian length followed by ``marshal.dumps(message)``.  Both ends run the same interpreter, so the marshal
format agrees; marshal builds plain values only (no class is instantiated while reading), and costs a few
microseconds a message.  `Frames` cuts a byte stream into messages whatever the read sizes.

The messages themselves are listed in `cpu_worker`'s docstring.
"""
from __future__ import annotations

import marshal
import struct

_HEADER = struct.Struct("!I")
MAX_FRAME = 1 << 30


def pack(msg) -> bytes:
    body = marshal.dumps(msg)
    return _HEADER.pack(len(body)) + body


class Frames:
    """Incremental decoder: ``feed(bytes)`` returns the messages completed by these bytes."""

    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list:
        buf = self.buf
        buf += data
        out = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > MAX_FRAME:
                raise ValueError(f"a frame of {size} bytes: the stream is corrupt")
            if end - pos - 4 < size:
                break
            out.append(marshal.loads(bytes(buf[pos + 4:pos + 4 + size])))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out
