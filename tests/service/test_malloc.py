"""service.malloc: glibc takes the arena limit; an explicit MALLOC_ARENA_MAX is left alone."""

from __future__ import annotations

import subprocess
import sys

from tests.service.server import ROOT


def run(code: str, env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def test_glibc_takes_the_arena_limit_unless_the_environment_sets_one() -> None:
    code = "from service.malloc import limit_arenas; print(limit_arenas())"
    assert run(code, {"PATH": "/usr/bin:/bin"}) == "True"
    assert run(code, {"PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "4"}) == "False"


def test_fixed_threshold_unset_by_zero_or_the_environment() -> None:
    code = ("from service.malloc import fix_mmap_threshold as f; "
            "print(f(256 * 1024), f(0))")
    assert run(code, {"PATH": "/usr/bin:/bin"}) == "True False"
    assert run(code, {"PATH": "/usr/bin:/bin", "MALLOC_MMAP_THRESHOLD_": "131072"}) == \
        "False False"


# Frees 2 MB blocks that sit between small live ones, after one 8 MB block was freed (which
# moves glibc's threshold up past 2 MB): prints the MB that RSS keeps above the start.
HOLES = """
import os
import sys
from bench.long_video_memory import rss_mb
from service.malloc import fix_mmap_threshold
if sys.argv[1] == "fixed":
    fix_mmap_threshold()
start = rss_mb(os.getpid())
big = bytearray(8 << 20); big[::4096] = b"x" * len(big[::4096]); del big
blocks, keep = [], []
for _ in range(100):
    block = bytearray(2 << 20); block[::4096] = b"x" * len(block[::4096])
    blocks.append(block); keep.append(bytearray(2000))
del blocks
print(round(rss_mb(os.getpid()) - start))
"""


def test_fixed_threshold_gives_freed_frames_back() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    moving, fixed = int(run(HOLES, env, "moving")), int(run(HOLES, env, "fixed"))
    assert moving >= 150  # glibc's moving threshold: the 2 MB blocks stay in the heap
    assert fixed <= 20


TRIM = """
import os
from bench.long_video_memory import rss_mb
from service.malloc import trim
blocks = [bytearray(1000) for _ in range(300_000)]
keep = blocks[::50]  # one live block in every few pages: the heap cannot shrink from its top
del blocks
before = rss_mb(os.getpid())
took = trim()
print(took, round(before - rss_mb(os.getpid())))
"""


def test_trim_hands_free_pages_under_live_blocks_back() -> None:
    took, released = run(TRIM, {"PATH": "/usr/bin:/bin"}).split()
    assert took == "True"
    assert int(released) >= 100  # of ~294 MB freed (269 MB came back here)
