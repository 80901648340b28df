"""`aia export` end to end: ONNX + TorchScript artifacts that match the eager model, a manifest
that describes them, no half-written directory when a check fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from exporters.artifact import MANIFEST, load_artifact, load_torchscript, onnx_session
from exporters.export import ExportOptions, export_artifact
from exporters.graphs import Dtype, ExportError, Format
from exporters.parity import OnnxRunner, TorchRunner, random_cases, run_case
from model.config import from_dict
from model.network import AIA
from model.train import checkpoint as ckpt

FILES = {"features.onnx", "head.onnx", "features.pt", "head.pt", MANIFEST}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint) -> tuple[Path, str]:
    """One fp32 export in both formats through the command line, in its own process so the
    test sees everything the user's terminal would -> (artifact, stdout + stderr)."""
    out = tmp_path_factory.mktemp("export") / "artifact"
    done = subprocess.run([sys.executable, "-m", "cli", "export", "--checkpoint",
                           str(checkpoint), "--out", str(out)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out, done.stdout + done.stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_export_writes_every_file_and_nothing_else(exported) -> None:
    out, _ = exported
    assert {p.name for p in out.iterdir()} == FILES
    assert leftovers(out.parent) == []


def test_export_keeps_deprecation_warnings_and_exporter_chatter_quiet(exported) -> None:
    _, output = exported
    assert "deprecated" not in output.lower()
    assert "[torch.onnx]" not in output
    assert "max |logit diff|" in output  # the parity summary is what the user sees


def test_manifest_describes_model_labels_input_and_provenance(exported, checkpoint) -> None:
    out, _ = exported
    manifest = json.loads((out / MANIFEST).read_text())
    state = ckpt.load(checkpoint)
    assert manifest["format"] == "aia-artifact/1"
    assert manifest["model_config"] == state["model_config"]
    assert [[lb["id"], lb["name"], lb["group"], lb["evaluated"]] for lb in manifest["labels"]] \
        == state["labels"]
    spec = manifest["input"]
    assert (spec["frames"], spec["short_side"], spec["max_long_side"]) == (16, 48, 64)
    assert (spec["memory_before"], spec["memory_after"], spec["persons_per_second"]) == (4, 4, 3)
    assert spec["test_box_enlarge"] == [0.1, 0.05]
    assert manifest["graphs"]["features"]["axes"]["H"] == [32, 64]
    assert manifest["dtype"] == "fp32"
    assert manifest["training"]["step"] == 0
    assert manifest["export"]["command"][:2] == ["aia", "export"]
    assert set(manifest["files"]) == FILES - {MANIFEST}


def test_manifest_parity_covers_the_required_cases_within_1e4(exported) -> None:
    out, _ = exported
    parity = json.loads((out / MANIFEST).read_text())["parity"]
    assert parity["passed"]
    for fmt in ("onnx", "torchscript"):
        cases = parity["formats"][fmt]["cases"]
        assert parity["formats"][fmt]["max_abs_logits"] <= 1e-4
        assert {c["persons"] for c in cases} >= {0, 1}
        assert max(c["persons"] for c in cases) > 8
        assert any("decoded" in c["case"] for c in cases)
        assert any("empty memory" in c["case"] for c in cases)
        assert any("full memory" in c["case"] for c in cases)
        assert all(c["top_label_same"] == c["persons"] for c in cases)


def test_onnx_artifact_matches_eager_at_new_shapes(exported, checkpoint, export_cfg) -> None:
    """Independent of the exporter's own check: other frame sizes, clips and seed."""
    out, _ = exported
    artifact = load_artifact(out, formats=("onnx", "torchscript"))
    model = AIA(from_dict(ckpt.load(checkpoint)["model_config"])).eval()
    model.load_state_dict(ckpt.load(checkpoint)["model"])
    eager = TorchRunner(model.features, model.head)
    onnx = OnnxRunner(onnx_session(artifact.path("features", "onnx")),
                      onnx_session(artifact.path("head", "onnx")))
    script = TorchRunner(load_torchscript(artifact.path("features", "torchscript")),
                         load_torchscript(artifact.path("head", "torchscript")))
    for case in random_cases(artifact.input, 36, 60, seed=7):
        feats, logits = run_case(eager, case, export_cfg.ia.max_objects)
        for runner in (onnx, script):
            got_feats, got_logits = run_case(runner, case, export_cfg.ia.max_objects)
            np.testing.assert_allclose(got_feats, feats, atol=1e-4, rtol=0)
            np.testing.assert_allclose(got_logits, logits, atol=1e-4, rtol=0)


def test_torchscript_has_no_device_frozen_by_the_trace(exported) -> None:
    out, _ = exported
    for graph in ("features", "head"):
        module = load_torchscript(out / f"{graph}.pt")
        code = "".join(m.code for m in module.modules() if m._c._has_method("forward"))
        assert 'torch.device("cpu")' not in code


def test_fp16_artifact_within_its_documented_bound(tmp_path, checkpoint) -> None:
    out = tmp_path / "fp16"
    result = export_artifact(checkpoint, out, ExportOptions(formats=(Format.TORCHSCRIPT,),
                                                            dtype=Dtype.FP16))
    parity = result.manifest["parity"]
    assert result.manifest["dtype"] == "fp16"
    assert parity["passed"]
    cases = parity["formats"]["torchscript"]["cases"]
    diff = parity["formats"]["torchscript"]["max_abs_logits"]
    assert 0 < diff <= min(c["tolerance"] for c in cases if c["persons"])  # really fp16
    assert all(c["tolerance"] >= 0.02 for c in cases)
    module = load_torchscript(out / "head.pt")
    assert next(module.parameters()).dtype == torch.float16


def test_failed_parity_leaves_nothing_behind(tmp_path, checkpoint, capsys) -> None:
    out = tmp_path / "artifact"
    code = main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--formats",
                 "torchscript", "--dtype", "fp16", "--tolerance", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "parity check failed, nothing written" in err
    assert "torchscript /" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_existing_out_is_kept_unless_overwrite(tmp_path, checkpoint, ts_artifact) -> None:
    out = tmp_path / "artifact"
    shutil.copytree(ts_artifact, out)
    before = (out / MANIFEST).read_text()
    with pytest.raises(ExportError, match="exists"):
        export_artifact(checkpoint, out, ExportOptions(formats=(Format.TORCHSCRIPT,)))
    assert (out / MANIFEST).read_text() == before
    export_artifact(checkpoint, out, ExportOptions(formats=(Format.TORCHSCRIPT,),
                                                   dtype=Dtype.FP16, overwrite=True))
    assert json.loads((out / MANIFEST).read_text())["dtype"] == "fp16"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--checkpoint", "{tmp}/missing.pt"], "missing.pt: checkpoint not found"),
     (["--checkpoint", "{tmp}/bad.pt"], "bad.pt: not a readable checkpoint")],
)
def test_bad_checkpoint_is_refused_by_name(tmp_path, capsys, args, message) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    argv = ["export", *(a.format(tmp=tmp_path) for a in args), "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_format_is_a_usage_error(tmp_path, checkpoint) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
              "--formats", "onnx,tflite"])
    assert exit_info.value.code == 2
