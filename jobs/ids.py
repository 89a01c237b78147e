"""Random (version 4) UUIDs in bulk, for the scheduler's and the send path's hot loops.

uuid.uuid4() reads the OS's random source once per id, and every read releases and retakes
the GIL. Beside another busy thread (a tick plans the next batch while its sender thread sends
the last) each of those reads waited for the GIL, and a tick of 10,000 slots spent about a
quarter of a second on ids. These generators read 4 KiB at a time. Create one per batch, not
per process, so a forked process never continues a parent's stream.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

_CHUNK = 4096  # bytes: 256 ids per read
# Version 4 and the RFC 4122 variant, as uuid.UUID(bytes=..., version=4) sets them.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_SET = (0x4000 << 64) | (0x8000 << 48)


def random_uuids() -> Iterator[uuid.UUID]:
    """An endless stream of random UUIDs, like uuid.uuid4()."""
    from_bytes = int.from_bytes
    while True:
        data = os.urandom(_CHUNK)
        for start in range(0, _CHUNK, 16):
            yield uuid.UUID(int=(from_bytes(data[start : start + 16]) & _CLEAR) | _SET)


def random_uuid_strings() -> Iterator[str]:
    """The same as strings ("8-4-4-4-12" hex), without building UUID objects."""
    while True:
        text = os.urandom(_CHUNK).hex()
        for i in range(0, 2 * _CHUNK, 32):
            variant = "89ab"[int(text[i + 16], 16) & 3]
            yield (
                f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-4{text[i + 13 : i + 16]}-"
                f"{variant}{text[i + 17 : i + 20]}-{text[i + 20 : i + 32]}"
            )
