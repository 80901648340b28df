"""bench/memory_reliance.py: which seconds each memory condition lets a key frame read, and
its report."""

from __future__ import annotations

from pathlib import Path

from bench.memory_reliance import (
    CONDITIONS,
    kept_seconds,
    plot,
    render_markdown,
)

SECONDS = {s: f"features of second {s}" for s in range(2, 15)}


def test_conditions_keep_the_key_second_and_what_they_name() -> None:
    full = kept_seconds(SECONDS, 8, CONDITIONS["full window"])
    none = kept_seconds(SECONDS, 8, CONDITIONS["no memory"])
    far = kept_seconds(SECONDS, 8, CONDITIONS["only seconds >= 3 s away"])
    assert full == SECONDS
    assert none == {8: SECONDS[8]}  # graph 2 still needs the key frame's own persons
    assert sorted(far) == [2, 3, 4, 5, 8, 11, 12, 13, 14]
    assert far[5] == SECONDS[5]
    assert 6 not in far
    assert 10 not in far


def test_report_table_and_picture(tmp_path: Path) -> None:
    families = {"pose": 0.9, "temporal": 0.5}
    report = {"checkpoint": "c.pt", "step": 4000, "data": "d", "split": "val", "videos": 6,
              "window": [4, 4], "rows": [
                  {"memory": m, "cut": c, "map": 0.7, "families": families}
                  for c in ("official (50 rows per key frame)", "every row") for m in CONDITIONS]}
    table = render_markdown(report)
    assert "| no memory | every row | 0.700 | 0.900 | 0.500 |" in table
    assert "step 4000" in table
    assert "-4..+4 s" in table
    plot(report, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 5_000
