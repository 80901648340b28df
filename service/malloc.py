"""glibc's allocator, told to give memory back. The service decodes and converts frames in
many worker threads; left to its defaults glibc
- gives each thread its own arena (up to 8 per core) and seldom returns an arena's pages:
  under a 10-minute, 16-client soak (bench/soak.py) RSS climbed without end (220 MB ->
  1.2 GB, 36 MB a minute); with two arenas it levels off (220 -> 660 MB, then flat);
- raises its mmap threshold each time a large block is freed (up to 32 MB), after which
  frame-sized arrays come from the arenas instead of their own mappings, and a freed one
  leaves a hole that RSS keeps; a fixed threshold keeps every array of a frame or more in a
  mapping that goes back to the system when it is freed;
- trims an arena only from its top, so free pages under a live block stay resident until
  `malloc_trim` hands them back (`trim`, called now and then by the service while it runs).

Environment variables glibc reads itself (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) win over
what is set here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 256 * 1024  # bytes; one 256 x 464 RGB frame is 356 KB


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only: AttributeError elsewhere
    except (OSError, AttributeError):
        return None
    return libc


def _set(param: int, value: int, environment: str) -> bool:
    if environment in os.environ:
        return False
    libc = _libc()
    return libc is not None and bool(libc.mallopt(param, value))


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Call before threads start. True when glibc took it; False elsewhere (musl, macOS) or
    when MALLOC_ARENA_MAX already says what to do."""
    return _set(M_ARENA_MAX, arenas, "MALLOC_ARENA_MAX")


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Blocks of `threshold` bytes or more get their own mapping, always (glibc stops moving
    the threshold up). 0 leaves glibc's moving threshold; False then, or when glibc is absent
    or MALLOC_MMAP_THRESHOLD_ is set."""
    return threshold > 0 and _set(M_MMAP_THRESHOLD, threshold, "MALLOC_MMAP_THRESHOLD_")


def trim() -> bool:
    """Hands every arena's free pages back to the system (glibc's malloc_trim(0)); True when
    some were. Takes the arenas' locks for a moment: call it off the event loop."""
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))
