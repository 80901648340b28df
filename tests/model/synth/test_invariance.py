"""The label families test what they claim, measured on decoded pixels of written mp4s.

For the object, person and temporal families, the pixels inside the labelled person's box over
the 64-frame window must not tell the classes of the family apart: a linear classifier trained
on the crops of half of the videos and tested on the other half stays at chance (within a
one-sided 99% binomial bound of the majority-class rate). Splitting by video matters: a person
keeps their clothes all video and a single stays alone all video, so a split by key frame
would let the classifier recognise people instead of actions.

Positive controls, same classifier: the pose and lamp families from the same box crops (both
are the person's own business at the key frame), and each other
family from a view that includes its deciding evidence (a wide crop with the object or the
partner; the person's own box 3-4 s before and after) is clearly better than chance.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binom
from torchvision.ops import roi_align

from model.data.ava_files import read_rows
from model.synth.classes import Family, family_ids
from model.synth.dataset import SynthSpec, write_dataset
from model.synth.video import read_video

VIDEOS, SECONDS, FPS, SEED = 12, 12, 25, 7
Key = tuple[str, int, int]  # video, second, person id
Blocks = list[np.ndarray]  # feature blocks of one view


def crops(clip: torch.Tensor, frames: np.ndarray, boxes: np.ndarray,
          size: tuple[int, int]) -> np.ndarray:
    """RoIAlign crops: clip [T,3,H,W], frames [N,F] indices, boxes [N,4] pixels ->
    [N,F,3,h,w] (each box applied to all F of its frames)."""
    n, f = frames.shape
    rois = torch.zeros(n * f, 5)
    rois[:, 0] = torch.from_numpy(frames.reshape(-1)).float()
    rois[:, 1:] = torch.from_numpy(np.repeat(boxes.astype(np.float32), f, axis=0))
    return roi_align(clip, rois, size, 1.0, 2, False).reshape(n, f, 3, *size).numpy()


def opponent(c: np.ndarray) -> np.ndarray:
    """[N,F,3,h,w] -> [N,2F]: per frame, the strongest red-over-green and green-over-red."""
    diff = (c[:, :, 0] - c[:, :, 1]).reshape(*c.shape[:2], -1)  # [N,F,h*w]
    return np.concatenate([diff.max(-1), -diff.min(-1)], axis=1)


def motion_blocks(c: np.ndarray) -> Blocks:
    """Per-pixel mean, spread and linear trend over time, plus colour-opponent peaks."""
    n = len(c)
    t = np.arange(c.shape[1]) - (c.shape[1] - 1) / 2
    trend = np.tensordot(t, c, axes=([0], [1])) / (t**2).sum()  # [N,3,h,w]
    return [c.mean(1).reshape(n, -1), c.std(1).reshape(n, -1), trend.reshape(n, -1),
            opponent(c)]


def grow(boxes: np.ndarray, wide: float, tall: float) -> np.ndarray:
    """Boxes [N,4] widened by `wide` and heightened by `tall` times their size (both sides)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + np.stack([-w * wide / 2, -h * tall / 2, w * wide / 2, h * tall / 2], 1)


def video_views(clip: torch.Tensor, keys: list[Key], people: dict[Key, tuple],
                size: tuple[int, int]) -> dict[str, list[Blocks]]:
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    boxes = np.array([people[k][0] for k in keys]) * scale
    centre = np.array([k[1] * FPS for k in keys])
    window = centre[:, None] + np.arange(-32, 32, 4)  # 16 of the 64 frames
    own = motion_blocks(crops(clip, window, grow(boxes, 0.1, 0.05), (16, 8)))
    # context: 7x as wide, the 16 frames the tiny preset sees; mirror-summed so an object or
    # partner on either side looks alike
    near = centre[:, None] + np.arange(-8, 8)
    wide = crops(clip, near, grow(boxes, 6.0, 0.3), (16, 48))
    context = [a + b for a, b in zip(motion_blocks(wide), motion_blocks(wide[..., ::-1].copy()),
                                     strict=True)]
    at, where = [], []
    for video, second, pid in keys:
        for lag in (-4, -3, 3, 4):
            other = people.get((video, second + lag, pid))
            at.append((second + lag) * FPS if other else 0)
            where.append(np.array(other[0]) * scale if other else np.array([0, 0, 1, 1]))
    seconds = crops(clip, np.array(at)[:, None], grow(np.array(where), 0.1, 0.05), (16, 8))
    seconds = seconds.reshape(len(keys), 4, 3, 16, 8)
    return {"box": own, "context": context,
            "seconds": [seconds.reshape(len(keys), -1), opponent(seconds)]}


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out: Path = tmp_path_factory.mktemp("invariance")
    spec = SynthSpec(out=out, videos=VIDEOS, seconds=SECONDS, seed=SEED, split_val=0.0)
    write_dataset(spec, workers=2, progress=False)
    people: dict[Key, tuple] = {}
    labels: dict[Key, list[int]] = defaultdict(list)
    for r in read_rows(out / "annotations" / "train.csv", "person_id"):
        key = (r.video_id, r.timestamp, int(r.value or 0))
        people[key] = (r.box,)
        labels[key].append(int(r.action_id or 0))
    features: dict[Key, dict[str, Blocks]] = {}
    for video in sorted({k[0] for k in people}):
        frames = read_video(out / "videos" / f"{video}.mp4")  # [T,H,W,3]
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # [T,3,H,W]
        keys = [k for k in people if k[0] == video]
        per_view = video_views(clip, keys, people, (spec.width, spec.height))
        for i, key in enumerate(keys):
            features[key] = {v: [b[i] for b in blocks] for v, blocks in per_view.items()}
    return {"features": features, "labels": labels}


def accuracy(views: dict, family: Family, view: str) -> tuple[float, float, float, int]:
    """Ridge classifier (one-hot targets, dual form), trained on the even videos and tested
    on the odd ones: (accuracy, majority rate, its 99% binomial bound, test count)."""
    ids = family_ids(family)
    rows, y, test = [], [], []
    for key, labels in views["labels"].items():
        for label in labels:
            if label in ids:  # a key frame with two labels of the family counts twice
                rows.append(views["features"][key][view])
                y.append(ids.index(label))
                test.append(int(key[0][-4:]) % 2 == 1)
    y_, is_test = np.array(y), np.array(test)
    parts = []
    for j in range(len(rows[0])):
        block = np.stack([r[j] for r in rows])
        mean, std = block[~is_test].mean(0), block[~is_test].std(0) + 1e-6
        parts.append((block - mean) / std / np.sqrt(block.shape[1]))  # each block weighs alike
    x = np.concatenate(parts, axis=1)
    train, held = x[~is_test], x[is_test]
    gram = train @ train.T
    targets = np.eye(len(ids))[y_[~is_test]] - 1.0 / len(ids)
    alpha = np.linalg.solve(gram + 0.1 * np.trace(gram) / len(train) * np.eye(len(train)),
                            targets)
    predicted = (held @ train.T @ alpha).argmax(1)
    n = int(is_test.sum())
    majority = np.bincount(y_[is_test], minlength=len(ids)).max() / n
    return float((predicted == y_[is_test]).mean()), majority, binom.ppf(0.99, n, majority) / n, n


@pytest.mark.parametrize("family", [Family.OBJECT, Family.PERSON, Family.TEMPORAL])
def test_box_pixels_do_not_tell_the_classes_apart(views: dict, family: Family) -> None:
    acc, chance, bound, n = accuracy(views, family, "box")
    assert n >= 80
    assert acc <= bound, f"{family}: {acc:.3f} > bound {bound:.3f} (chance {chance:.3f})"


@pytest.mark.parametrize(("family", "view", "least"), [
    (Family.POSE, "box", 80),  # pose is the person's own business
    (Family.LAMP, "box", 30),  # so is the lamp at its own second (a flash every 6 s: rarer)
    (Family.OBJECT, "context", 80),  # the object is right there beside the box
    (Family.PERSON, "context", 80),  # and so is the partner
    (Family.TEMPORAL, "seconds", 80),  # and the lamp flash, 3-4 s away
])
def test_the_deciding_evidence_does(views: dict, family: Family, view: str,
                                    least: int) -> None:
    acc, chance, bound, n = accuracy(views, family, view)
    assert n >= least
    assert acc > max(bound, chance + 0.15), f"{family}/{view}: {acc:.3f} (chance {chance:.3f})"
