"""The service's loader refuses any artifact that is not exactly what `aia export` wrote."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from exporters.artifact import MANIFEST, ArtifactError, InputSpec, load_artifact
from model.config import preset
from model.data.video import WindowSpec


@pytest.fixture
def artifact(tmp_path, ts_artifact) -> Path:
    out = tmp_path / "artifact"
    shutil.copytree(ts_artifact, out)
    return out


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        manifest = json.loads((root / MANIFEST).read_text())
        change(manifest)
        (root / MANIFEST).write_text(json.dumps(manifest))
    return apply


def flip_byte(name: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = bytearray((root / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (root / name).write_bytes(bytes(data))
    return apply


def truncate(name: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    return apply


def set_key(*path_and_value: object) -> Callable[[dict], None]:
    *keys, value = path_and_value

    def change(manifest: dict) -> None:
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


@pytest.mark.parametrize(
    ("damage", "names", "says"),
    [
        (lambda root: (root / "head.pt").unlink(), "head.pt", "missing"),
        (flip_byte("features.pt"), "features.pt", "sha256 differs"),
        (truncate("head.pt"), "head.pt", "truncated"),
        (lambda root: (root / MANIFEST).unlink(), MANIFEST, "not found"),
        (truncate(MANIFEST), MANIFEST, "not valid JSON"),
        (edit_manifest(set_key("format", "aia-artifact/99")), MANIFEST, "aia-artifact/99"),
        (edit_manifest(set_key("dtype", "int8")), MANIFEST, "dtype 'int8'"),
        (edit_manifest(set_key("input", "frames", 32)), MANIFEST, "does not match"),
        (edit_manifest(lambda m: m["labels"].pop()), MANIFEST, "labels"),
        (edit_manifest(lambda m: m.pop("files")), MANIFEST, "missing ['files']"),
        (edit_manifest(set_key("graphs", "head", "files", "torchscript", "../head.pt")),
         MANIFEST, "not a file inside"),
        (edit_manifest(lambda m: m["files"].pop("head.pt")), "head.pt", "not covered"),
    ],
    ids=["missing-file", "wrong-hash", "truncated-file", "no-manifest", "truncated-manifest",
         "unknown-format", "unknown-dtype", "input-mismatch", "labels-mismatch", "no-files",
         "path-escape", "unhashed-file"],
)
def test_damaged_artifact_is_refused_naming_the_file(artifact, damage, names, says) -> None:
    damage(artifact)
    with pytest.raises(ArtifactError) as err:
        load_artifact(artifact)
    message = str(err.value)
    assert message.startswith(str(artifact / names)), message
    assert says in message


def test_intact_artifact_loads_with_config_labels_and_paths(artifact) -> None:
    loaded = load_artifact(artifact, formats=("torchscript",))
    assert loaded.config.input.short_side == 48
    assert loaded.input == InputSpec.from_config(loaded.config)
    assert [lb.id for lb in loaded.labels] == list(range(1, 81))
    assert loaded.labels[0].group == "pose"
    assert loaded.path("head", "torchscript") == artifact / "head.pt"
    assert loaded.dtype == "fp32"


def test_missing_format_is_refused(artifact) -> None:
    with pytest.raises(ArtifactError, match=r"manifest.json: graph 'features' has no onnx"):
        load_artifact(artifact, formats=("onnx",))


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1920, 1080), (200, 900), (64, 64)])
def test_input_spec_resize_is_the_data_loaders(width, height) -> None:
    cfg = preset("tiny")
    spec = InputSpec.from_config(cfg)
    assert spec.resized(width, height) == WindowSpec.from_input(cfg.input).resized(width, height)


def test_input_spec_window_is_the_config_window() -> None:
    cfg = preset("r50_4x16")
    spec = InputSpec.from_config(cfg)
    assert spec.window == cfg.ia.window
    offsets = spec.window.neighbours()
    assert len(offsets) == 60
    assert 0 not in offsets
    assert (offsets[0], offsets[-1]) == (-30, 30)
