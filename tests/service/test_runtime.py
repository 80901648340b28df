"""The three runtimes load the same artifact and agree; warm-up runs the usual shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from exporters.artifact import MANIFEST, Artifact, ArtifactError, load_artifact
from service.runtime import Runtime, load_runtime, warm_up, warm_up_inputs
from service.settings import Device, RuntimeKind

KINDS = (RuntimeKind.onnx, RuntimeKind.torchscript, RuntimeKind.eager)


@pytest.fixture(scope="module")
def artifact(random_artifact: Path) -> Artifact:
    return load_artifact(random_artifact)


@pytest.fixture(scope="module")
def runtimes(artifact: Artifact) -> dict[RuntimeKind, Runtime]:
    return {kind: load_runtime(artifact, kind, Device.cpu) for kind in KINDS}


def sparse_case(artifact: Artifact) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Two 40x56 clips, boxes only in clip 1; head: 0 persons, no objects, no memory."""
    spec, rng = artifact.input, np.random.default_rng(3)
    clip = rng.integers(0, 256, (2, spec.frames, 40, 56, 3), dtype=np.uint8)
    boxes = np.array([[1, 2, 3, 30, 38], [1, 10, 4, 50, 36]], np.float32)
    d = spec.feature_dim
    head = (np.zeros((0, d), np.float32), np.zeros(0, np.int64),
            np.zeros((2, 0, d), np.float32), np.zeros((2, 0), bool),
            np.zeros((2, 0, d), np.float32), np.zeros((2, 0), bool), np.zeros((2, 0), np.int64))
    return (clip, boxes), head


def test_runtimes_agree_on_both_graphs(artifact: Artifact,
                                       runtimes: dict[RuntimeKind, Runtime]) -> None:
    usual = warm_up_inputs(artifact.input)
    sparse = sparse_case(artifact)
    spec = artifact.input
    for features_in, head_in in (usual, sparse):
        reference = runtimes[RuntimeKind.onnx]
        feats, logits = reference.features(*features_in), reference.head(*head_in)
        assert feats.shape == (len(features_in[1]), spec.feature_dim)
        assert logits.shape == (len(head_in[0]), spec.num_classes)
        assert feats.dtype == logits.dtype == np.float32
        assert np.isfinite(feats).all()
        assert np.isfinite(logits).all()
        for kind in (RuntimeKind.torchscript, RuntimeKind.eager):
            other = runtimes[kind]
            np.testing.assert_allclose(other.features(*features_in), feats, atol=1e-4, rtol=0)
            np.testing.assert_allclose(other.head(*head_in), logits, atol=1e-4, rtol=0)
    usual_logits = runtimes[RuntimeKind.onnx].head(*usual[1])
    assert float(np.abs(usual_logits).max()) > 1e-3  # random weights: not all zeros


def test_names_devices_and_mask_flag(runtimes: dict[RuntimeKind, Runtime]) -> None:
    for kind, runtime in runtimes.items():
        assert runtime.name == kind.value
        assert runtime.device == "cpu"


def test_auto_device_falls_back_to_a_working_one(artifact: Artifact) -> None:
    runtime = load_runtime(artifact, RuntimeKind.onnx, Device.auto)
    assert runtime.device in ("cpu", "cuda")
    features_in, _ = warm_up_inputs(artifact.input)
    reference = load_runtime(artifact, RuntimeKind.onnx, Device.cpu).features(*features_in)
    np.testing.assert_allclose(runtime.features(*features_in), reference, atol=1e-4, rtol=0)


def test_inputs_are_cast_to_the_manifest_dtypes(runtimes: dict[RuntimeKind, Runtime],
                                                artifact: Artifact) -> None:
    (clip, boxes), head = warm_up_inputs(artifact.input)
    loose = (head[0].astype(np.float64), head[1].astype(np.int32), head[2],
             head[3].astype(np.uint8), head[4].astype(np.float16).astype(np.float64), head[5],
             head[6].astype(np.int32))
    exact = (*head[:4], head[4].astype(np.float16).astype(np.float32), *head[5:])
    for runtime in runtimes.values():
        np.testing.assert_array_equal(runtime.features(clip, boxes.astype(np.float64)),
                                      runtime.features(clip, boxes))
        np.testing.assert_array_equal(runtime.head(*loose), runtime.head(*exact))


def test_wrong_number_of_head_inputs_is_a_type_error(
        runtimes: dict[RuntimeKind, Runtime], artifact: Artifact) -> None:
    _, head = warm_up_inputs(artifact.input)
    for runtime in runtimes.values():
        with pytest.raises(TypeError, match="takes 7 inputs"):
            runtime.head(*head[:6])


def test_eager_needs_the_torchscript_weights(random_artifact: Path, tmp_path: Path) -> None:
    onnx_only = tmp_path / "onnx-only"
    shutil.copytree(random_artifact, onnx_only)
    manifest = json.loads((onnx_only / MANIFEST).read_text())
    for graph in manifest["graphs"].values():
        del graph["files"]["torchscript"]
    (onnx_only / MANIFEST).write_text(json.dumps(manifest))
    artifact = load_artifact(onnx_only)
    with pytest.raises(ArtifactError, match="TorchScript files"):
        load_runtime(artifact, RuntimeKind.eager, Device.cpu)
    with pytest.raises(ArtifactError, match="no torchscript file"):
        load_runtime(artifact, RuntimeKind.torchscript, Device.cpu)
    assert load_runtime(artifact, RuntimeKind.onnx, Device.cpu).name == "onnx"


class Recorder:
    """A real runtime that records the shapes it is called with."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime, self.calls = runtime, []
        self.name, self.device = runtime.name, runtime.device

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.calls.append(("features", clip.shape, boxes.shape))
        return self.runtime.features(clip, boxes)

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        self.calls.append(("head", inputs[0].shape, inputs[4].shape))
        return self.runtime.head(*inputs)


def test_warm_up_runs_the_usual_shapes(runtimes: dict[RuntimeKind, Runtime],
                                       artifact: Artifact) -> None:
    spec = artifact.input
    recorder = Recorder(runtimes[RuntimeKind.onnx])
    warm_up(recorder, spec)
    w, h, _ = spec.resized(round(spec.short_side * 1.5), spec.short_side)
    full_memory = spec.window.slots
    clip_shape = (1, spec.frames, h, w, 3)
    assert recorder.calls == [
        ("features", clip_shape, (3 + spec.max_objects, 5)),
        ("head", (3, spec.feature_dim), (1, full_memory, spec.feature_dim)),
    ] * 2
    recorder.calls.clear()
    warm_up(recorder, spec, frame_size=(640, 480), rounds=1)
    assert recorder.calls[0][1][2:4] == (48, 64)
