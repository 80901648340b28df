"""service.malloc: glibc takes the arena limit; an explicit MALLOC_ARENA_MAX is left alone."""

from __future__ import annotations

import subprocess
import sys

from tests.service.server import ROOT


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def test_glibc_takes_the_arena_limit_unless_the_environment_sets_one() -> None:
    code = "from service.malloc import limit_arenas; print(limit_arenas())"
    assert run(code, {"PATH": "/usr/bin:/bin"}) == "True"
    assert run(code, {"PATH": "/usr/bin:/bin", "MALLOC_ARENA_MAX": "4"}) == "False"
