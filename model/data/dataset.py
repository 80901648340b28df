"""The AVA-format dataset: one item per annotated key frame of a split.

Training (`train_options`) uses ground-truth person boxes (a random subset when a key frame
has more than `max_persons`), box jitter, horizontal flip and colour jitter. Evaluation
(`eval_options`) uses the detector person boxes scoring at least `person_threshold` (0.8 as
the paper), highest first; each takes the labels of the ground-truth box it overlaps at
IoU >= `match_iou`, so a validation loss is possible. Objects: those scoring at least
`object_threshold` (0.5, the paper's object detector threshold), top `max_objects` by score.

Videos that are missing or cannot be opened are skipped with a `SkippedVideoWarning` and a
record in `dataset.skipped`; a key frame whose window fails to decode inside a worker comes
back as a `Skipped` item that `collate` lists in `Batch.skipped`. Items are addressed by
`(epoch, index)` so augmentation is a function of (seed, epoch, index), whichever worker runs.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset
from tqdm import tqdm

from model.boxes import person_test_rois
from model.config import ModelConfig
from model.data import transforms as tf
from model.data.annotations import (
    BoxTable,
    Key,
    empty_table,
    read_box_file,
    read_checked_label_map,
    read_exclusions_checked,
    read_ground_truth,
)
from model.data.cache import WindowCache
from model.data.layout import DatasetError, DatasetLayout, load_layout
from model.data.records import ClipMeta, Sample, Skipped
from model.data.video import VideoError, VideoInfo, WindowSpec, probe, read_window


class SkippedVideoWarning(UserWarning):
    """A video or key frame was left out; the message names the file."""


class PersonSource(enum.StrEnum):
    GROUND_TRUTH = "ground_truth"  # annotation boxes (training)
    DETECTED = "detected"  # the split's person box file (evaluation)


@dataclass(frozen=True)
class LoaderOptions:
    persons: PersonSource = PersonSource.GROUND_TRUTH
    augment: tf.Augment = field(default_factory=tf.Augment.off)
    person_threshold: float = 0.8
    object_threshold: float = 0.5
    match_iou: float = 0.5
    max_persons: int | None = None  # None: cfg.ia.max_persons
    max_objects: int | None = None  # None: cfg.ia.max_objects
    seed: int = 0
    cache_dir: Path | None = None  # decoded windows kept here (None: decode every time)
    probe_videos: bool = True  # open every video up front so broken ones are skipped early
    # person boxes grow as at test time (cfg.roi.test_enlarge): the service's rule, so that
    # validation and held-out scores measure what the service serves
    test_boxes: bool = False


def train_options(**changes: Any) -> LoaderOptions:
    return replace(LoaderOptions(persons=PersonSource.GROUND_TRUTH, augment=tf.Augment()),
                   **changes)


def eval_options(**changes: Any) -> LoaderOptions:
    return replace(LoaderOptions(persons=PersonSource.DETECTED, augment=tf.Augment.off(),
                                 test_boxes=True), **changes)


@dataclass(frozen=True)
class _Persons:
    boxes: np.ndarray  # [n,4] normalised
    targets: np.ndarray  # [n,A]
    ids: np.ndarray  # [n]
    scores: np.ndarray  # [n]


def warn_skip(item: Skipped) -> None:
    where = "" if item.timestamp is None else f" at {item.timestamp} s"
    warnings.warn(f"skipping video {item.video_id}{where}: {item.reason}",
                  SkippedVideoWarning, stacklevel=3)


class AvaDataset(Dataset):
    def __init__(self, root: str | Path | DatasetLayout, split: str, cfg: ModelConfig,
                 options: LoaderOptions | None = None) -> None:
        self.layout = root if isinstance(root, DatasetLayout) else load_layout(root)
        self.split = split
        self.options = options if options is not None else LoaderOptions()
        self.spec = WindowSpec.from_input(cfg.input)
        self.test_enlarge = cfg.roi.test_enlarge
        self.max_persons = self.options.max_persons or cfg.ia.max_persons
        self.max_objects = self.options.max_objects or cfg.ia.max_objects
        self.cache = (None if self.options.cache_dir is None
                      else WindowCache(Path(self.options.cache_dir), self.spec))
        files = self.layout.split(split)
        self.labels = read_checked_label_map(self.layout.label_map)
        self.ground_truth = read_ground_truth(files.annotations, self.labels,
                                              self.layout.label_map)
        excluded = read_exclusions_checked(files.exclusions)
        self.detections = self._person_boxes(files.person_boxes)
        self.objects = (empty_table() if files.object_boxes is None else read_box_file(
            files.object_boxes, "object box file", self.layout.object_categories))
        self.skipped: list[Skipped] = []
        self._infos: dict[str, VideoInfo] = {}
        keys = sorted(self.ground_truth.keys() - excluded)
        self._found = self.layout.video_paths()
        self._paths = self._usable_videos(sorted({video for video, _ in keys}))
        self.keys: list[Key] = [k for k in keys if k[0] in self._paths]
        if not self.keys:
            raise DatasetError(f"{self.layout.source}: split {split!r} has no usable key frame "
                               f"({len(keys)} annotated and not excluded, "
                               f"{len(self.skipped)} videos skipped)")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def _person_boxes(self, path: Path | None) -> BoxTable:
        if path is None:
            if self.options.persons is PersonSource.DETECTED:
                raise DatasetError(f"{self.layout.source}: split {self.split!r} has no "
                                   "person_boxes file, needed for detected persons")
            return empty_table()
        return read_box_file(path, "person box file")

    def _skip_video(self, video_id: str, reason: str) -> None:
        item = Skipped(video_id, None, reason)
        self.skipped.append(item)
        warn_skip(item)

    def _usable_videos(self, video_ids: list[str]) -> dict[str, Path]:
        usable: dict[str, Path] = {}
        for video_id in tqdm(video_ids, desc=f"videos ({self.split})", leave=False,
                             disable=not self.options.probe_videos or len(video_ids) < 20):
            path = self._found.get(video_id)
            if path is None:
                self._skip_video(video_id, f"no file {self.layout.videos}/{video_id}.* "
                                           "(mp4, mkv, webm, avi, mov)")
                continue
            if self.options.probe_videos:
                try:
                    self._infos[video_id] = probe(path)
                except VideoError as err:
                    self._skip_video(video_id, str(err))
                    continue
            usable[video_id] = path
        return usable

    def __len__(self) -> int:
        return len(self.keys)

    def video_info(self, video_id: str) -> VideoInfo:
        """Probed once per process (a worker probes the videos it meets if not done up front)."""
        if video_id not in self._infos:
            path = self._paths.get(video_id) or self._found.get(video_id)
            if path is None:
                raise DatasetError(f"{self.layout.videos}: no video file for {video_id!r}")
            self._infos[video_id] = probe(path)
        return self._infos[video_id]

    def window(self, key: Key) -> tuple[np.ndarray, VideoInfo, bool]:
        """(uint8 [T,h,w,3], video info, came from the cache) of one key frame."""
        info = self.video_info(key[0])
        if self.cache is not None:
            cached = self.cache.load(key[0], key[1], info.fingerprint)
            if cached is not None:
                return cached, info, True
        window = read_window(info.path, key[1], self.spec, info)
        if self.cache is not None:
            self.cache.store(key[0], key[1], info.fingerprint, window)
        return window, info, False

    def __getitem__(self, item: int | tuple[int, int]) -> Sample | Skipped:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        key = self.keys[index]
        try:
            window, info, cached = self.window(key)
        except VideoError as err:
            skipped = Skipped(key[0], key[1], str(err))
            warn_skip(skipped)
            return skipped
        rng = np.random.default_rng([self.options.seed, epoch, index])
        return self.make_sample(key, window, info, cached, rng)

    def persons(self, key: Key, rng: np.random.Generator | None) -> _Persons:
        """The key frame's persons; `rng` None takes the first `max_persons` ground truths."""
        gt = self.ground_truth
        rows = gt.rows(key)
        if self.options.persons is PersonSource.GROUND_TRUTH:
            count = rows.stop - rows.start
            pick = (np.arange(min(count, self.max_persons)) if rng is None
                    else tf.random_subset(count, self.max_persons, rng)) + rows.start
            return _Persons(gt.boxes[pick], gt.labels[pick].astype(np.float32), gt.ids[pick],
                            gt.scores[pick])
        det = self.detections.rows(key)
        boxes, scores = self.detections.boxes[det], self.detections.scores[det]
        keep = np.flatnonzero(scores >= self.options.person_threshold)
        keep = keep[tf.top_by_score(scores[keep], self.max_persons)]
        targets = np.zeros((len(keep), self.num_classes), np.float32)
        if len(keep) and rows.stop > rows.start:
            iou = tf.box_iou(boxes[keep], gt.boxes[rows])  # [n,G]
            best = iou.argmax(axis=1)
            hit = iou[np.arange(len(keep)), best] >= self.options.match_iou
            targets[hit] = gt.labels[rows][best[hit]]
        return _Persons(boxes[keep], targets, np.full(len(keep), -1, np.int64), scores[keep])

    def object_rows(self, key: Key) -> np.ndarray:
        """Row indices into `self.objects` kept for the key frame, highest score first."""
        rows = self.objects.rows(key)
        scores = self.objects.scores[rows]
        keep = np.flatnonzero(scores >= self.options.object_threshold)
        return keep[tf.top_by_score(scores[keep], self.max_objects)] + rows.start

    def make_sample(self, key: Key, window: np.ndarray, info: VideoInfo, cached: bool,
                    rng: np.random.Generator | None) -> Sample:
        """Boxes in pixels of the window, then augmentation when `rng` is given."""
        height, width = window.shape[1:3]
        persons = self.persons(key, rng)
        obj = self.object_rows(key)
        if self.options.test_boxes:
            person_px = person_test_rois(persons.boxes, self.test_enlarge, width, height)
        else:
            person_px = tf.to_pixels(persons.boxes, width, height)
        object_px = tf.to_pixels(self.objects.boxes[obj], width, height)
        flipped, aug = False, self.options.augment
        if rng is not None:
            person_px = tf.jitter_boxes(person_px, width, height, aug.box_jitter, rng)
            flipped = bool(rng.random() < aug.flip_prob)
            if flipped:
                window = tf.flip_clip(window)
                person_px = tf.flip_boxes(person_px, width)
                object_px = tf.flip_boxes(object_px, width)
            window = tf.colour_jitter(window, aug, rng)
        meta = ClipMeta(key[0], key[1], (info.height, info.width), (height, width),
                        self.spec.resized(info.width, info.height)[2], flipped, cached)
        return Sample(window, person_px, persons.targets, persons.ids, persons.scores,
                      persons.boxes.astype(np.float32), object_px, self.objects.scores[obj],
                      self.objects.ids[obj], meta)
