"""`aia import --from pytorchvideo`: every tensor of the hub's `slowfast_r50_detection`
placed (key names and shapes recorded by running pytorchvideo's own code:
tests/data/pytorchvideo/), every one of ours set, and a file that does not fit refused by name.

That the imported network computes what pytorchvideo computes (res5, RoI features and logits
to 1e-4) is shown by bench/pytorchvideo_parity.py against pytorchvideo's code itself
(docs/results/pytorchvideo-parity.md); CI cannot fetch pytorchvideo, so it checks what that
proof rests on: the complete mapping and the config the hub's code fixes. No export here:
the R50 graphs take minutes on CPU, and the import path they share is tested with AlphAction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from exporters.graphs import ExportError
from exporters.import_command import write_checkpoint
from exporters.import_pytorchvideo import infer_config, load_pytorchvideo, map_state, unwrap
from model.config import LossKind
from model.network import AIA

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "pytorchvideo"
BUILDER = "slowfast_r50_detection"


def reference_keys(builder: str = BUILDER) -> dict[str, list[int]]:
    return json.loads((FIXTURES / f"keys-{builder}.json").read_text())["keys"]


def zero_state(builder: str = BUILDER) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape) for k, shape in reference_keys(builder).items()}


@pytest.fixture(scope="module")
def ours() -> dict[str, torch.Tensor]:
    """Our state dict for the inferred config (an R50 built once: about 2 s)."""
    return AIA(infer_config(zero_state())).state_dict()


def test_the_config_is_the_hubs_detector() -> None:
    cfg = infer_config(zero_state())
    assert (cfg.input.frames, cfg.input.fast_stride, cfg.input.alpha) == (64, 2, 4)
    assert (cfg.input.fast_frames, cfg.input.slow_frames) == (32, 8)
    assert cfg.input.slow_sampling == "linspace"
    assert cfg.input.mean == (114.75,) * 3
    assert cfg.input.std == (57.375,) * 3
    assert (cfg.backbone.lateral_kernel, cfg.backbone.lateral_norm) == (7, True)
    assert cfg.backbone.pool1_padding
    assert cfg.backbone.res5_dilation == 2
    assert cfg.ia.blocks == ()
    assert (cfg.classifier.hidden, cfg.classifier.dropout) == ((), 0.5)
    assert all(g.loss is LossKind.SIGMOID for g in cfg.classifier.groups)
    assert (cfg.roi.output_size, cfg.roi.sampling_ratio, cfg.roi.aligned) == (7, 0, False)
    assert cfg.feature_dim == 2304


def test_every_published_tensor_is_placed(ours: dict[str, torch.Tensor]) -> None:
    keys = reference_keys()
    cfg = infer_config(zero_state())
    mapped = map_state(cfg, ours, zero_state())
    assert set(mapped) == set(ours)  # every one of ours set, and (map_state) every one placed
    counters = [k for k in keys if k.endswith("num_batches_tracked")]
    assert len(counters) > 100
    assert len(keys) - len(counters) == len(mapped)


def test_a_file_that_does_not_fit_is_refused_by_name(ours: dict[str, torch.Tensor]) -> None:
    state = zero_state()
    cfg = infer_config(state)
    victim = "model.blocks.2.multipathway_fusion.norm.running_var"
    missing = {k: v for k, v in state.items() if k != victim}
    with pytest.raises(ExportError, match=r"1 of ours unset.*laterals\.2\.norm\.running_var"):
        map_state(cfg, ours, missing)
    extra = {**state, "detection_head.extra.weight": torch.zeros(3)}
    with pytest.raises(ExportError, match=r"1 of its tensors not placed.*extra\.weight"):
        map_state(cfg, ours, extra)
    wrong = {**state, "detection_head.proj.weight": torch.zeros(60, 2304)}
    with pytest.raises(ExportError, match=r"1 misshapen.*detection_head\.proj\.weight"):
        map_state(cfg, ours, wrong)


def test_other_models_and_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="res4 has 0 blocks"):
        infer_config(zero_state("slowfast_r50"))  # the Kinetics classifier: no `model.` tree
    headless = {k: v for k, v in zero_state().items() if not k.startswith("detection_head.")}
    with pytest.raises(ExportError, match="not the hub's detection model"):
        infer_config(headless)
    with pytest.raises(ExportError, match="not a pytorchvideo checkpoint"):
        unwrap({"model_state": {"a": 1}}, tmp_path / "x.pyth")
    state = {"model.x": torch.zeros(1)}
    assert unwrap({"model_state": state, "epoch": 3}, tmp_path) == state
    assert unwrap(state, tmp_path) == state
    junk = tmp_path / "junk.pyth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="not a readable torch checkpoint"):
        load_pytorchvideo(junk)
    with pytest.raises(ExportError, match="--preset applies to --from alphaction only"):
        write_checkpoint("pytorchvideo", junk, "r50_4x16", tmp_path)
    with pytest.raises(ExportError, match="supported: alphaction, pytorchvideo"):
        write_checkpoint("pyslowfast", junk, None, tmp_path)


def test_the_published_layout_imports(tmp_path: Path) -> None:
    """The hub's file layout ({"model_state": ...}, no prefix) through `aia import`'s own
    checkpoint writer: AVA's 80 labels, the source and mapping version recorded."""
    source = tmp_path / "SLOWFAST_8x8_R50_DETECTION.pyth"
    torch.save({"model_state": zero_state()}, source)
    checkpoint = torch.load(write_checkpoint("pytorchvideo", source, None, tmp_path),
                            weights_only=False)
    assert checkpoint["imported"]["source"] == "pytorchvideo"
    assert checkpoint["imported"]["mapping_version"] == 1
    assert len(checkpoint["imported"]["sha256"]) == 64
    assert len(checkpoint["labels"]) == 80
    assert checkpoint["model_config"]["input"]["slow_sampling"] == "linspace"


def test_the_kinetics_classifier_backbone_is_placed() -> None:
    """`slowfast_r50` (Kinetics, no `model.` prefix, res5 strided): every backbone tensor has
    a place in ours; only its 400-class projection is left."""
    from exporters.import_pytorchvideo import backbone_names, kinetics_backbone_config
    from model.backbone import build_slowfast

    theirs = {k: v for k, v in reference_keys("slowfast_r50").items()
              if not k.endswith("num_batches_tracked")}
    cfg = kinetics_backbone_config()
    assert (cfg.backbone.res5_stride, cfg.backbone.res5_dilation) == (2, 1)
    names = backbone_names(cfg, prefix="")
    with torch.device("meta"):
        ours = build_slowfast(cfg.backbone, cfg.input.alpha).state_dict()
    for key, value in ours.items():
        source = names[f"features.backbone.{key}"]
        assert list(value.shape) == theirs[source], key
    assert set(theirs) - set(names.values()) == {"blocks.6.proj.weight", "blocks.6.proj.bias"}
