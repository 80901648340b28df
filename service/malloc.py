"""glibc's allocator, told to keep few arenas: the service decodes and converts frames in
many worker threads, and glibc gives each thread its own arena (up to 8 per core), which it
seldom returns to the system. Under a 10-minute, 16-client soak (bench/soak.py) the server's
RSS then climbed without end (220 MB -> 1.2 GB, 36 MB a minute); with two arenas it levels
off (220 -> 660 MB, then flat). The environment variable MALLOC_ARENA_MAX, when set, wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Call before threads start. True when glibc took it; False elsewhere (musl, macOS) or
    when MALLOC_ARENA_MAX already says what to do."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
