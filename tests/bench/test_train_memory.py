"""The Figure 5 benchmark measures what it claims: joint memory keeps more activations for
backward as the window grows, AMU does not."""

from __future__ import annotations

from bench.train_memory import make_data, measure_point, write_results


def test_joint_grows_with_the_window_and_amu_does_not(tmp_path) -> None:
    data = make_data(tmp_path / "data", 5)
    rows = [measure_point(data, "tiny", mode, window, 1, "cpu")
            for mode in ("amu", "joint") for window in (0, 1)]
    saved = {(r["mode"], r["window"]): r["saved_bytes"] for r in rows}
    assert saved[("joint", 1)] > 2 * saved[("joint", 0)]  # two more clips' activations
    assert saved[("amu", 1)] < 1.05 * saved[("amu", 0)]
    write_results(rows, tmp_path / "out" / "fig5", "tiny", "cpu")
    table = (tmp_path / "out" / "fig5.md").read_text()
    assert table.count("| joint |") == 2
    assert (tmp_path / "out" / "fig5.png").stat().st_size > 0
