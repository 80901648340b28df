from __future__ import annotations

from pathlib import Path

import pytest

from model.detector.config import DetectorConfig
from model.synth.dataset import SynthSpec, write_dataset

# a network small enough that a training step takes milliseconds
TINY = DetectorConfig(widths=(8, 8, 16, 16), fpn_channels=16, head_channels=32,
                      score_threshold=0.0, max_detections=20)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 6-second videos at 96x64 (one per split)."""
    out = tmp_path_factory.mktemp("det-synth")
    write_dataset(SynthSpec(out=out, videos=2, seconds=6, seed=5, width=96, height=64,
                            split_val=0.5), workers=1, progress=False)
    return out
