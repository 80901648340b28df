"""Run a TF1 frozen SSDLite graph on frames and dump reference outputs.

This script runs INSIDE a throwaway TensorFlow venv (e.g. /tmp/tf-venv with
tensorflow-cpu and numpy); it is never imported by the project and has no
project imports. It produces reference tensors for the PyTorch rebuild of the
person-only SSDLite-MobileNetV2 detector (TF Object Detection API export).

Usage:
    python bench/ssdlite_tf_run.py --graph frozen_inference_graph.pb \
        --frames frames.npz --out tf_out.npz \
        [--tensors NAME,NAME...] [--describe graph.txt]

IN.npz holds frame_0, frame_1, ... each uint8 [H, W, 3] RGB of any size. Each
frame is run with batch 1; the output npz holds detection_boxes_i,
detection_scores_i, detection_classes_i, num_detections_i (batch dim dropped)
plus ``<sanitised tensor name>_i`` for every extra tensor named with --tensors.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
INPUT = "image_tensor:0"
KEY_ATTRS = (
    "strides",
    "padding",
    "dilations",
    "data_format",
    "epsilon",
    "is_training",
    "align_corners",
    "half_pixel_centers",
    "dtype",
    "T",
    "ksize",
    "iou_threshold",
    "score_threshold",
)
SMALL_CONST = 16


def load_graph_def(path: Path) -> tf.compat.v1.GraphDef:
    """Parse a frozen GraphDef from ``path``."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    return graph_def


def sanitise(name: str) -> str:
    """Turn a tensor name into an npz-safe key (``a/b:0`` -> ``a_b_0``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def _attr_text(value: Any) -> str:
    """Render a protobuf AttrValue compactly."""
    kind = value.WhichOneof("value")
    if kind == "list":
        lst = value.list
        items = list(lst.i) or list(lst.f) or [x.decode() for x in lst.s]
        return str(items)
    if kind == "s":
        return value.s.decode()
    if kind == "type":
        return tf.dtypes.as_dtype(value.type).name
    if kind == "shape":
        return str(tf.TensorShape(value.shape))
    return str(getattr(value, kind)) if kind else ""


def describe(graph_def: tf.compat.v1.GraphDef) -> str:
    """One line per node: name, op, inputs, key attrs; Const shape and small values."""
    lines = []
    for node in graph_def.node:
        parts = [f"{node.name} | {node.op} | in=[{', '.join(node.input)}]"]
        for key in KEY_ATTRS:
            if key in node.attr and not (node.op == "Const" and key == "dtype"):
                parts.append(f"{key}={_attr_text(node.attr[key])}")
        if node.op.startswith("Resize") and "half_pixel_centers" not in node.attr:
            parts.append("half_pixel_centers=<absent: default False>")
        if node.op == "Const":
            arr = tf.make_ndarray(node.attr["value"].tensor)
            parts.append(f"const {arr.dtype}{list(arr.shape)}")
            if arr.size <= SMALL_CONST:
                parts.append(f"value={arr.ravel().tolist()}")
        lines.append(" | ".join(parts))
    return "\n".join(lines) + "\n"


def run(
    graph_def: tf.compat.v1.GraphDef, frames: dict[str, np.ndarray], extra: list[str]
) -> dict[str, np.ndarray]:
    """Run every ``frame_i`` through the graph; return the flat output dict."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    fetch_names = [f"{name}:0" for name in OUTPUTS] + extra
    fetches = [graph.get_tensor_by_name(name) for name in fetch_names]
    keys = list(OUTPUTS) + [sanitise(name) for name in extra]
    out: dict[str, np.ndarray] = {}
    with tf.compat.v1.Session(graph=graph) as sess:
        for i in range(len(frames)):
            frame = frames[f"frame_{i}"]
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame_{i}: want uint8 [H,W,3], got {frame.dtype}{frame.shape}")
            values = sess.run(fetches, feed_dict={INPUT: frame[None]})
            for key, value in zip(keys, values, strict=True):
                arr = np.asarray(value)
                if key in OUTPUTS:
                    arr = arr[0]
                out[f"{key}_{i}"] = arr
    return out


def main() -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tensors", default="", help="comma-separated extra tensor names")
    parser.add_argument("--describe", type=Path, help="write a text dump of the graph here")
    args = parser.parse_args()

    graph_def = load_graph_def(args.graph)
    if args.describe:
        args.describe.write_text(describe(graph_def))
    extra = [name.strip() for name in args.tensors.split(",") if name.strip()]
    with np.load(args.frames) as data:
        frames = {key: data[key] for key in data.files}
    out = run(graph_def, frames, extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    for i in range(len(frames)):
        n = int(out[f"num_detections_{i}"])
        print(f"frame_{i} {frames[f'frame_{i}'].shape} num_detections={n}")
        for score, box in zip(
            out[f"detection_scores_{i}"][:5], out[f"detection_boxes_{i}"][:5], strict=True
        ):
            print(f"  {score:.4f} {np.array2string(box, precision=4, separator=',')}")


if __name__ == "__main__":
    main()
