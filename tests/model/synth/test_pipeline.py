"""`aia synth` output goes through the rest of the data side unchanged: the loader batches it
for the network, and `aia eval` scores its ground truth against itself at mAP 1.0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli.main import main
from model.config import preset
from model.data.batching import make_loader
from model.data.dataset import AvaDataset, eval_options, train_options
from model.data.layout import load_layout
from model.labels import class_groups, read_label_table
from model.network import build_aia, empty_memory
from tests.model.synth.test_command import synth


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "pipeline"
    assert synth(out, seed=5) == 0
    return out


@pytest.mark.parametrize("split", ["train", "val"])
def test_loader_batches_synth_for_the_network(data: Path, split: str) -> None:
    layout = load_layout(data)
    assert layout.label_table is not None
    labels = read_label_table(layout.label_table)
    groups = class_groups(labels)
    assert [g.name for g in groups] == ["pose", "object", "person", "lamp", "temporal"]
    cfg = preset("tiny").replace(classifier={"num_classes": len(labels),
                                             "groups": [g.__dict__ for g in groups]})
    options = train_options() if split == "train" else eval_options(person_threshold=0.5)
    dataset = AvaDataset(layout, split, cfg, options)
    batch = next(iter(make_loader(dataset, 4)))
    assert batch.clip.shape[1:2] == (cfg.input.frames,)
    assert batch.targets.shape[1] == len(labels) == 20
    assert batch.person_boxes.shape[0] > 0
    model = build_aia(cfg).eval()
    with torch.no_grad():
        out = model(batch.clip, batch.person_boxes, batch.object_boxes,
                    *empty_memory(cfg, batch.num_clips))
    assert out.logits.shape == batch.targets.shape


def test_ground_truth_against_itself_scores_one(data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.loads((data / "dataset.json").read_text())["splits"]["val"]
    report = tmp_path / "eval.json"
    assert main(["eval", "--gt", str(data / spec["annotations"]),
                 "--pred", str(data / spec["annotations"]),
                 "--labelmap", str(data / "labels.pbtxt"),
                 "--exclusions", str(data / spec["exclusions"]),
                 "--groups", str(data / "labels.csv"), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["mAP"] == pytest.approx(1.0)
    assert "mAP" in capsys.readouterr().out
