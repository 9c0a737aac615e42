"""Give freed memory back to the operating system after large request bodies (the model server's
predictions, the monitor's events).

A 7.7 MB event decodes into ~50 MB of Python objects for a moment. glibc's malloc keeps what is
freed for later rather than returning it, for two reasons: it raises its mmap threshold to the
size of each large block it frees (up to 32 MB on 64-bit), after which large bodies come from the
heap; and freed heap pages stay mapped until the top of the heap is free. Measured on the monitor
(rounds of 10 events of 7.7 MB and 10 of 6 MB, RSS after the first / fifth round, from 325 MB):
untouched +41 / +44 MB; fixed threshold +13 / +22 MB; fixed threshold and ``malloc_trim`` after
each large event +4 / +8 MB.

The model server calls only ``release_after`` (from ``serving.guards``), not
``fix_mmap_threshold``: a fixed threshold sends every activation tensor of a forward pass through
mmap and munmap, and in ``make soak`` (torch bf16, 120 s, 3.8 MB texts among the traffic) it cost
27% of the answered requests. Trimming after bodies of 1 MB or more took the server's end RSS from
+13.4% to +8.3% of its start in the same soak, at no cost in throughput.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("serving.monitor")

M_MMAP_THRESHOLD = -3  # glibc malloc.h
DEFAULT_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value
LARGE_BODY_BYTES = 1 << 20  # after a body this large, free pages go back at once


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (musl has neither)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


def fix_mmap_threshold(threshold: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold, which also stops it rising (unless ``MALLOC_MMAP_THRESHOLD_``
    already set it); False where there is no glibc (macOS, musl): nothing to fix there."""
    if _LIBC is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, threshold))


def release_after(body_bytes: int) -> None:
    """After a request body of ``body_bytes``, once its objects are freed: hand free pages back to
    the OS if it was large (``malloc_trim``: a few milliseconds, the GIL released)."""
    if _LIBC is not None and body_bytes >= LARGE_BODY_BYTES:
        _LIBC.malloc_trim(0)
