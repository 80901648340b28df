"""pytorchvideo's AVA detector imported, proven equal to pytorchvideo's own code.

bench/pytorchvideo_reference.py builds the hub's `slowfast_r50_detection` (pytorchvideo's
code, random weights), saves it in the published layout and records one forward pass. This
script imports that checkpoint as a user would (`aia import --from pytorchvideo`), exports
the artifact (ONNX + TorchScript), and compares on the reference's own inputs:
- backbone: our SlowFast on the reference's normalised slow/fast tensors -> res5 maps;
- slow frames: our linspace index against the reference's `slow_index`;
- RoI features: pooled from the reference's res5 maps on its boxes -> the projection's input;
- head: the exported head graph (ONNX Runtime and TorchScript) on those features -> logits,
  and the scores of our all-sigmoid class groups against the model's own output.
The features graph itself is checked against eager at export (the manifest's parity).

    .venv/bin/python -m bench.pytorchvideo_parity --reference /tmp/ptv_ref

Writes bench/results/pytorchvideo_parity.json and docs/results/pytorchvideo-parity.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.artifact import load_artifact
from exporters.export import ExportOptions, export_artifact
from exporters.graphs import Format
from exporters.import_command import write_checkpoint
from exporters.import_pytorchvideo import load_pytorchvideo
from model.network import AIA
from model.postprocess import action_scores
from service.runtime import load_runtime
from service.settings import Device, RuntimeKind

TARGET = 1e-4
BUILDER = "slowfast_r50_detection"
CHECKED = ("backbone", "roi_features", "eager_logits", "onnx_logits", "torchscript_logits",
           "scores")


def head_inputs(features: np.ndarray) -> tuple[np.ndarray, ...]:
    """Graph 2's seven inputs for persons of one clip, no objects and no memory (the
    detector has no IA: the head is its one Linear)."""
    d = features.shape[1]
    return (features, np.zeros(len(features), np.int64), np.zeros((1, 0, d), np.float32),
            np.zeros((1, 0), bool), np.zeros((1, 0, d), np.float32), np.zeros((1, 0), bool),
            np.zeros((1, 0), np.int64))


def max_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


@torch.no_grad()
def eager(reference: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The imported network run eagerly on the reference's tensors -> (results, io)."""
    io = torch.load(reference / "io.pt", weights_only=True)
    cfg, state, facts = load_pytorchvideo(reference / "checkpoint.pyth")
    model = AIA(cfg).eval()
    model.load_state_dict(state)
    slow, fast = model.features.backbone(io["slow"], io["fast"])
    out: dict[str, Any] = {"builder": io["builder"], "version": io["pytorchvideo_version"],
                           "import": facts, "boxes": len(io["bboxes"])}
    out["slow_index"] = model.features.slow_index.tolist()
    out["slow_index_equal"] = out["slow_index"] == io["slow_index"].tolist()
    out["backbone"] = max(max_diff(slow, io["res5_slow"]), max_diff(fast, io["res5_fast"]))
    pooled = model.features.roi(io["res5_slow"], io["res5_fast"], io["bboxes"])
    out["roi_features"] = max_diff(pooled, io["head_input"])
    out["roi_features_own_res5"] = max_diff(model.features.roi(slow, fast, io["bboxes"]),
                                            io["head_input"])
    logits = model.head(*map(torch.from_numpy, head_inputs(io["head_input"].numpy())))
    out["eager_logits"] = max_diff(logits, io["logits"])
    out["scores"] = max_diff(action_scores(logits.numpy(), cfg.classifier.groups),
                             io["scores"])
    out["logit_scale"] = float(io["logits"].abs().max())
    return out, io


def exported(reference: Path, work: Path, io: dict[str, Any]) -> dict[str, Any]:
    """`aia import`'s checkpoint exported; its head graphs on the reference's features."""
    checkpoint = write_checkpoint("pytorchvideo", reference / "checkpoint.pyth", None, work)
    artifact_dir = work / "artifact"
    result = export_artifact(checkpoint, artifact_dir, ExportOptions(
        formats=(Format.ONNX, Format.TORCHSCRIPT), parity_short_side=96))
    out: dict[str, Any] = {"export_parity": {f: r["max_abs_logits"] for f, r in
                                             result.manifest["parity"]["formats"].items()}}
    inputs = head_inputs(io["head_input"].numpy())
    for kind in (RuntimeKind.onnx, RuntimeKind.torchscript):
        artifact = load_artifact(artifact_dir, (kind.value,))
        runtime = load_runtime(artifact, kind, Device.cpu)
        out[f"{kind.value}_logits"] = max_diff(runtime.head(*inputs), io["logits"])
    return out


@torch.no_grad()
def kinetics_backbone(reference: Path) -> float:
    """The hub's Kinetics classifier `slowfast_r50`: its backbone weights in ours (res5
    strided, `kinetics_backbone_config`) -> max |res5 difference| on its recorded input."""
    from exporters.import_pytorchvideo import backbone_names, kinetics_backbone_config
    from model.backbone import build_slowfast

    cfg = kinetics_backbone_config()
    backbone = build_slowfast(cfg.backbone, cfg.input.alpha).eval()
    state = torch.load(reference / "checkpoint.pyth", weights_only=True)["model_state"]
    names = {k.removeprefix("features.backbone."): v
             for k, v in backbone_names(cfg, prefix="").items()}
    backbone.load_state_dict({k: state[names[k]] for k in backbone.state_dict()})
    io = torch.load(reference / "io.pt", weights_only=True)
    slow, fast = backbone(io["slow"], io["fast"])
    return max(max_diff(slow, io["res5_slow"]), max_diff(fast, io["res5_fast"]))


def compare(reference: Path, work: Path) -> dict[str, Any]:
    out, io = eager(reference)
    out.update(exported(reference, work, io))
    out["passed"] = out["slow_index_equal"] and all(out[k] <= TARGET for k in CHECKED)
    return out


def write_report(row: dict[str, Any], md: Path) -> None:
    parity = ", ".join(f"{f} {v:.1e}" for f, v in row["export_parity"].items())
    lines = ["# pytorchvideo's AVA detector imported: equal to pytorchvideo's own code", "",
             f"`bench/pytorchvideo_parity.py`: pytorchvideo {row['version']}'s hub model "
             f"`{row['builder']}` built on CPU with random weights by "
             "`bench/pytorchvideo_reference.py`, saved in the published layout "
             "(`{\"model_state\": ...}`), imported with `aia import --from pytorchvideo`, "
             "exported, and run on the reference's own inputs (slow 8 / fast 32 frames at "
             f"128 x 160, {row['boxes']} boxes). Slow frames (linspace over the fast ones): "
             f"{row['slow_index']}, "
             f"{'the same as' if row['slow_index_equal'] else 'DIFFERENT from'} the "
             f"reference's. Max absolute differences; target {TARGET}:", "",
             "| backbone res5 | RoI features | logits, eager | logits, ONNX | "
             "logits, TorchScript | scores (all sigmoid) | largest logit | verdict |",
             "|---|---|---|---|---|---|---|---|",
             f"| {row['backbone']:.1e} | {row['roi_features']:.1e} | "
             f"{row['eager_logits']:.1e} | {row['onnx_logits']:.1e} | "
             f"{row['torchscript_logits']:.1e} | {row['scores']:.1e} | "
             f"{row['logit_scale']:.2f} | {'equal' if row['passed'] else 'DIFFERENT'} |", "",
             "RoI features pooled from our own res5 maps differ by "
             f"{row['roi_features_own_res5']:.1e}. The features graph against eager at export "
             f"(the manifest's parity, logits at short side 96): {parity}.", "",
             "The hub's Kinetics classifier `slowfast_r50` (res5 strided, not dilated: "
             "`backbone.res5_stride=2`, `res5_dilation=1`): its backbone weights placed in ours "
             f"give res5 maps within {row['kinetics_backbone']:.1e} of pytorchvideo's on its "
             "recorded input (224 x 256)."]
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path("/tmp/ptv_ref"))
    parser.add_argument("--out", type=Path,
                        default=Path("bench/results/pytorchvideo_parity.json"))
    parser.add_argument("--md", type=Path, default=Path("docs/results/pytorchvideo-parity.md"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aia-pytorchvideo-") as work:
        row = compare(args.reference / BUILDER, Path(work))
    row["kinetics_backbone"] = kinetics_backbone(args.reference / "slowfast_r50")
    row["passed"] = row["passed"] and row["kinetics_backbone"] <= TARGET
    print(json.dumps({k: v for k, v in row.items() if k != "import"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1) + "\n")
    write_report(row, args.md)


if __name__ == "__main__":
    main()
