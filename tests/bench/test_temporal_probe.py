"""bench/temporal_probe.py on a made-up store whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from bench.temporal_probe import (
    LAGS,
    Second,
    average_precision,
    identity_probe,
    nearest_is_self,
    oracle_rows,
    own_at,
    render_markdown,
)


def store(persons: int = 3, seconds: int = 12, videos: int = 4) -> dict:
    """Each person's feature is their one-hot identity plus noise; target column 0 is set
    when the person's id equals (second - 3) % persons (so it is decided 3 s earlier)."""
    rng = np.random.default_rng(0)
    out = {}
    for v in range(videos):
        for s in range(seconds):
            ids = np.arange(persons)
            feats = np.eye(persons, 8, dtype=np.float32) + rng.normal(0, 0.05, (persons, 8))
            targets = np.zeros((persons, 2), np.float32)
            targets[(s - 3) % persons, 0] = 1
            out[(f"synth_{v:04d}", s)] = Second(feats.astype(np.float32), ids, targets)
    return out


def test_average_precision() -> None:
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.8])) == 1.0
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.1])) == pytest.approx(0.5)


def test_own_features_are_found_by_id_or_zero() -> None:
    s = store()
    assert np.array_equal(own_at(s, "synth_0000", 5, 2, 8), s[("synth_0000", 5)].feats[2])
    assert not own_at(s, "synth_0000", 50, 2, 8).any()  # not annotated there
    x, y, odd = oracle_rows(s, [0])
    assert x.shape == (4 * 12 * 3, len(LAGS) * 8)
    assert y.shape == (4 * 12 * 3, 1)
    assert odd.sum() == 2 * 12 * 3


def test_identity_is_found_when_features_carry_it() -> None:
    near = nearest_is_self(store())
    assert set(near) == {-4, -3, -1, 1, 3, 4}
    assert min(near.values()) == 1.0
    probe = identity_probe(store())
    assert probe["accuracy"] > 0.95
    assert probe["majority"] == pytest.approx(1 / 3)
    # features without identity: the nearest neighbour is anybody
    s = {k: v._replace(feats=np.ones_like(v.feats)) for k, v in store().items()}
    assert max(nearest_is_self(s).values()) < 0.5


def test_markdown() -> None:
    report = {"checkpoint": "c.pt", "step": 9, "data": "d", "split": "train", "videos": 2,
              "seconds": 20, "persons_per_second": 5.0,
              "oracle": [{"id": 17, "name": "lamp flashed red 3-4 s ago", "ap": 0.9,
                          "prevalence": 0.1}],
              "nearest_is_self": {-3: 0.6, 3: 0.55},
              "identity_probe": {"accuracy": 0.8, "majority": 0.2, "videos": 2}}
    text = render_markdown(report)
    assert "| 17 lamp flashed red 3-4 s ago | 0.900 | 0.100 |" in text
    assert "| share | 0.600 | 0.550 |" in text
    assert "accuracy 0.800 (majority 0.200" in text


def test_identity_hint_and_head_probe_run_on_the_tiny_config() -> None:
    from bench.temporal_probe import head_probe, with_identity_hint
    from model.config import preset

    cfg = preset("tiny")
    rng = np.random.default_rng(1)
    data = {}
    for v in range(2):
        for s in range(10):
            targets = np.zeros((3, cfg.classifier.num_classes), np.float32)
            targets[s % 3, 0] = 1
            feats = rng.normal(0, 1, (3, cfg.feature_dim)).astype(np.float32)
            data[(f"synth_{v:04d}", s)] = Second(feats, np.arange(3), targets)
    hinted = with_identity_hint(data)
    first = hinted[("synth_0000", 0)].feats
    assert first[1, 1] == 5.0
    assert first[1, 0] == 0.0
    assert np.array_equal(first[:, 16:], data[("synth_0000", 0)].feats[:, 16:])
    aps = head_probe(hinted, cfg, [0, 1], steps=2)
    assert len(aps) == 2
    assert 0.0 < aps[0] <= 1.0
    assert aps[1] == 0.0  # no positives in column 1
