"""The paper's published models imported, proven equal to the reference code (AlphAction).

For each reference directory made by bench/alphaction_reference.py (AlphAction's own model,
random weights, saved in the published layout, with one forward pass recorded), this script
imports the checkpoint as a user would (`aia import --from alphaction`), exports the artifact
(ONNX + TorchScript), and compares on the reference's own inputs:
- backbone: our SlowFast on the reference's normalised slow/fast tensors -> res5 maps;
- RoI features: person and object features pooled from the reference's res5 maps and RoIs;
- head: the exported head graph (ONNX Runtime and TorchScript) on the reference's person and
  object features and memory (its pool entries, laid out as the service lays them out)
  -> logits.
The features graph itself is checked against eager at export (the manifest's parity).

    .venv/bin/python -m bench.alphaction_parity --reference /tmp/alphaction_ref

Writes bench/results/alphaction_parity.json and docs/results/alphaction-parity.md.
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
from exporters.import_alphaction import load_alphaction
from exporters.import_command import write_checkpoint
from model.network import AIA
from service.runtime import load_runtime
from service.settings import Device, RuntimeKind

TARGET = 1e-4


def head_inputs(io: dict[str, Any], k: int) -> tuple[np.ndarray, ...]:
    """The reference's person/object features and memory pool as graph 2's seven inputs."""
    person = io["person_features"].numpy()
    objects = io["object_features"]
    objects = np.zeros((0, person.shape[1]), np.float32) if objects is None else objects.numpy()
    feats, seconds = [np.zeros((0, person.shape[1]), np.float32)], []
    pool = io.get("memory") or {"seconds": [], "features": []}  # the baseline has none
    for second, rows in zip(pool["seconds"], pool["features"], strict=True):
        feats.append(rows[:k].numpy())
        seconds += [second] * len(rows[:k])
    memory = np.concatenate(feats)[None]  # [1,M,D]
    return (person, np.zeros(len(person), np.int64), objects[None],
            np.ones((1, len(objects)), bool), memory, np.ones((1, memory.shape[1]), bool),
            np.array(seconds, np.int64)[None])


@torch.no_grad()
def compare(reference: Path, work: Path) -> dict[str, Any]:
    io = torch.load(reference / "io.pt", weights_only=True)
    cfg, state, facts = load_alphaction(reference / "checkpoint.pth")
    model = AIA(cfg).eval()
    model.load_state_dict(state)
    slow, fast = model.features.backbone(io["slow"], io["fast"])
    out: dict[str, Any] = {"config": io["config"], "alphaction_commit": io["alphaction_commit"],
                           "import": facts}
    out["backbone"] = max(float((slow - io["backbone_slow"]).abs().max()),
                          float((fast - io["backbone_fast"]).abs().max()))
    rois = torch.cat([torch.zeros(len(io["person_rois"]), 1), io["person_rois"]], 1)
    pooled = model.features.roi(io["backbone_slow"], io["backbone_fast"], rois)
    out["person_features"] = float((pooled - io["person_features"]).abs().max())
    checkpoint = write_checkpoint("alphaction", reference / "checkpoint.pth", None, work)
    artifact_dir = work / "artifact"
    export_artifact(checkpoint, artifact_dir, ExportOptions(
        formats=(Format.ONNX, Format.TORCHSCRIPT), parity_short_side=96))
    inputs = head_inputs(io, cfg.ia.persons_per_second)
    logits = io["logits"].numpy()
    out["logit_scale"] = float(np.abs(logits).max())
    out["eager_logits"] = float(np.abs(model.head(*map(torch.from_numpy, inputs)).numpy()
                                       - logits).max())
    for kind in (RuntimeKind.onnx, RuntimeKind.torchscript):
        artifact = load_artifact(artifact_dir, (kind.value,))
        runtime = load_runtime(artifact, kind, Device.cpu)
        out[f"{kind.value}_logits"] = float(np.abs(runtime.head(*inputs) - logits).max())
    out["passed"] = all(out[k] <= TARGET for k in (
        "backbone", "person_features", "eager_logits", "onnx_logits", "torchscript_logits"))
    return out


def write_report(rows: list[dict[str, Any]], md: Path) -> None:
    lines = ["# The paper's models imported: equal to AlphAction's own code", "",
             "`bench/alphaction_parity.py`: AlphAction's model (commit "
             f"{rows[0]['alphaction_commit'][:12]}) built on CPU with random weights by "
             "`bench/alphaction_reference.py` (its CUDA ops replaced by torchvision's, each "
             "stand-in documented there), saved in the published layout, imported with "
             "`aia import --from alphaction`, exported, and run on the reference's own inputs "
             "(3 persons, 2 objects, memory at 7 seconds of the 61-second window). Max absolute "
             f"differences; target {TARGET}:", "",
             "| model | backbone res5 | person features | logits, eager | logits, ONNX | "
             "logits, TorchScript | largest logit | verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['backbone']:.1e} | {r['person_features']:.1e} | "
                     f"{r['eager_logits']:.1e} | {r['onnx_logits']:.1e} | "
                     f"{r['torchscript_logits']:.1e} | {r['logit_scale']:.2f} | "
                     f"{'equal' if r['passed'] else 'DIFFERENT'} |")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=Path("/tmp/alphaction_ref"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/alphaction_parity.json"))
    parser.add_argument("--md", type=Path, default=Path("docs/results/alphaction-parity.md"))
    args = parser.parse_args()
    rows = []
    for reference in sorted(p for p in args.reference.iterdir() if (p / "io.pt").is_file()):
        with tempfile.TemporaryDirectory(prefix="aia-alphaction-") as work:
            rows.append(compare(reference, Path(work)))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "import"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    write_report(rows, args.md)


if __name__ == "__main__":
    main()
