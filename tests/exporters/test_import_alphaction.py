"""`aia import --from alphaction`: every tensor of the six published AIA layouts placed (key
names and shapes recorded by running AlphAction's own code: tests/data/alphaction/), a file
that does not fit refused by name, and a full import -> serve -> 80-class AVA answer.

That the imported network computes what AlphAction computes (logits to 1e-4) is shown by
bench/alphaction_parity.py against AlphAction's code itself (docs/results/alphaction-parity.md);
CI cannot fetch AlphAction, so it checks what that proof rests on: the complete mapping."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from cli.main import main
from exporters.graphs import ExportError
from exporters.import_alphaction import infer_config, map_state
from model.config import Structure
from model.labels import ava_labels
from model.network import AIA
from tests.real_footage import video_path
from tests.service.server import Server

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "alphaction"
EXPECTED = {  # config -> (preset, structure, IA blocks)
    "resnet50_4x16f_baseline": ("r50_4x16", Structure.SERIAL, 0),
    "resnet50_4x16f_serial": ("r50_4x16", Structure.SERIAL, 6),
    "resnet50_4x16f_parallel": ("r50_4x16", Structure.PARALLEL, 6),
    "resnet50_4x16f_denseserial": ("r50_4x16", Structure.DENSE, 6),
    "resnet101_8x8f_baseline": ("r101_8x8", Structure.SERIAL, 0),
    "resnet101_8x8f_denseserial": ("r101_8x8", Structure.DENSE, 6),
}


def reference_keys(config: str) -> dict[str, list[int]]:
    return json.loads((FIXTURES / f"keys-{config}.json").read_text())["keys"]


def random_state(config: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """AlphAction's state dict for `config` with random values (BN variances positive)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_keys(config).items():
        value = torch.randn(shape, generator=generator) * 0.02
        state[key] = value.abs() + 0.5 if key.endswith("running_var") else value
    return state


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_every_published_tensor_is_placed(config: str) -> None:
    keys = reference_keys(config)
    state = {k: torch.zeros(shape) for k, shape in keys.items()}
    cfg = infer_config(state, config)
    preset_name, structure, blocks = EXPECTED[config]
    assert (cfg.name, cfg.ia.structure, len(cfg.ia.blocks)) == (preset_name, structure, blocks)
    assert not cfg.backbone.lateral_norm
    assert cfg.input.centred_sampling
    assert (cfg.ia.use_masks, cfg.ia.person_keys_from_input) == (False, True)
    ours = AIA(cfg).state_dict()
    mapped = map_state(cfg, ours, state)
    assert set(mapped) == set(ours)  # every one of ours set, and (map_state) every one placed
    assert len(keys) == len(mapped)


def test_a_file_that_does_not_fit_is_refused_by_name() -> None:
    state = {k: torch.zeros(s) for k, s in reference_keys("resnet50_4x16f_serial").items()}
    cfg = infer_config(state, "resnet50_4x16f_serial")
    ours = AIA(cfg).state_dict()
    victim = "roi_heads.action.feature_extractor.ia_structure.O_block_2.value.weight"
    missing = {k: v for k, v in state.items() if k != victim}
    with pytest.raises(ExportError, match=r"1 of ours unset.*blocks\.4\.value\.weight"):
        map_state(cfg, ours, missing)
    extra = {**state, "roi_heads.action.extra.weight": torch.zeros(3)}
    with pytest.raises(ExportError, match=r"1 of its tensors not placed.*extra\.weight"):
        map_state(cfg, ours, extra)
    wrong = {**state, victim: torch.zeros(1024, 2304, 1, 1, 1)}
    with pytest.raises(ExportError, match="1 misshapen"):
        map_state(cfg, ours, wrong)
    with pytest.raises(ExportError, match="res4 has 0 blocks"):
        infer_config({"backbone.slow.conv1.weight": torch.zeros(1)})


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet50_4x16f_denseserial as published (`module.` keys under 'model'), imported."""
    folder = tmp_path_factory.mktemp("alphaction")
    source = folder / "resnet50_4x16f_denseserial.pth"
    state = random_state("resnet50_4x16f_denseserial")
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 1},
               source)
    out = folder / "aia-r50-dense"
    assert main(["import", "--from", "alphaction", str(source), "--out", str(out),
                 "--formats", "onnx", "--parity-short-side", "64"]) == 0
    return out


@pytest.mark.slow
def test_import_serves_ava_actions(imported: Path, tmp_path: Path) -> None:
    manifest = json.loads((imported / "manifest.json").read_text())
    training = manifest["training"]
    assert training["imported"]["source"] == "alphaction"
    assert training["imported"]["structure"] == "dense"
    assert training["imported"]["mapping_version"] == 1
    assert len(training["imported"]["sha256"]) == 64
    assert training["dataset"] == {"name": "ava-v2.2", "label_set": "ava-v2.2-80",
                                   "real_footage": True}
    assert [lb["name"] for lb in manifest["labels"]] == [lb.name for lb in ava_labels()]
    boxes = [{"timestamp": t, "boxes": [[0.1, 0.1, 0.95, 1.0]]} for t in (1.0, 2.0)]
    server = Server(imported, {"AIA_RUNTIME": "onnx"}, tmp_path / "serve.log").wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client, open(
                video_path("carphone_pristine.mp4"), "rb") as handle:
            video = handle.read()
            answer = client.post("/v1/detect", params={"top_k": 80, "min_score": 0},
                                 files={"video": ("car.mp4", video, "video/mp4")},
                                 data={"boxes": json.dumps(boxes)})
            csv = client.post("/v1/detect", params={"format": "ava_csv"},
                              files={"video": ("car.mp4", video, "video/mp4")},
                              data={"boxes": json.dumps(boxes)})
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["trained_on"] == "ava-v2.2"
    assert body["model"]["real_footage"] is True
    assert body["persons_from"] == "boxes"
    names = {lb.id: lb.name for lb in ava_labels()}
    for keyframe in body["keyframes"]:
        (person,) = keyframe["persons"]
        actions = {a["id"]: a for a in person["actions"]}
        assert len(actions) == 80
        assert all(a["name"] == names[a["id"]] for a in actions.values())
        pose = sum(actions[i]["score"] for i in range(1, 15))  # AVA's pose group: softmax
        assert pose == pytest.approx(1.0, abs=1e-3)
    assert csv.status_code == 200
    pred = tmp_path / "pred.csv"
    pred.write_text(csv.text)
    gt = tmp_path / "gt.csv"
    gt.write_text("video,0001,0.1,0.1,0.95,1.0,12,0\nvideo,0002,0.1,0.1,0.95,1.0,12,0\n")
    labelmap = Path(__file__).resolve().parents[2] / "model" / "labels" / \
        "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    result = tmp_path / "eval.json"
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--labelmap", str(labelmap),
                 "--json", str(result)]) == 0
    assert np.isfinite(json.loads(result.read_text())["mAP"])
