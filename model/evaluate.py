"""AVA frame mAP at IoU 0.5, giving the official ActivityNet AVA evaluator's numbers, vectorised.

The official evaluator (ActivityNet `get_ava_performance.py` on the TF object-detection
`per_image_evaluation` and `metrics`) is followed exactly, ties included:

- rows whose class is not in the label map are dropped first; then every key frame keeps its
  50 best-scoring prediction rows over all classes, the way the official reader's bounded
  min-heap keeps them (rows are fed in file order and replace the heap's smallest tuple
  `(score, class, y1, x1, y2, x2)` only when strictly better in score), and lists them stably
  sorted by descending score; ground truth goes through the same heap without a bound, its
  "score" being the person id (1.0 when absent);
- excluded key frames are removed from both sides;
- prediction boxes without positive width and height are dropped after that cut;
- per key frame and class, detections in list order each take the ground-truth box of highest
  IoU (the first one on equal IoU; TF convention, no +1); a detection is a true positive if
  that IoU is >= 0.5 and the box is not taken yet, else a false positive (VOC: it does not
  fall back to another box);
- per class, detections are concatenated key frame by key frame in order of the key frame's
  first prediction row and ranked by `np.argsort(scores)[::-1]` (so equal scores rank as the
  official's do); AP is VOC's: precision made monotone, summed over every recall change;
- mAP is the mean over label-map classes that have ground truth.

Ordering only needs the slow, literal heap where equal scores make it matter (a tie across
the 50-row cut, or equal scores in one key frame and class); every other key frame is ordered
by sorting.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from model.data.ava_files import Row

MAX_DETECTIONS_PER_KEYFRAME = 50
IOU_THRESHOLD = 0.5

Key = tuple[str, int]
# (score, class index, y1, x1, y2, x2): the official reader's heap entry. Class indices are
# ranks of the sorted label ids, so they compare like the ids themselves.
_Entry = tuple[float, int, float, float, float, float]


@dataclass(frozen=True)
class EvalResult:
    """Frame mAP and its parts; AP values are fractions in [0, 1]."""

    mean_ap: float  # NaN when no label-map class has ground truth
    ap: Mapping[int, float]  # class id -> AP, only classes with ground truth
    names: Mapping[int, str]  # the label map
    num_gt: Mapping[int, int]  # ground-truth boxes per label-map class
    num_detections: Mapping[int, int]  # scored detections per label-map class
    counts: Mapping[str, int] = field(default_factory=dict)  # rows and key frames dropped/kept

    @property
    def unscored(self) -> tuple[int, ...]:
        """Label-map classes without ground truth: no AP, left out of the mean."""
        return tuple(c for c in sorted(self.names) if c not in self.ap)

    def group_means(self, groups: Mapping[int, str]) -> dict[str, float]:
        """Mean AP per group (e.g. pose/object/person) over the group's classes that have AP;
        classes without a group are left out, groups without a scored class are absent."""
        members: dict[str, list[float]] = {}
        for class_id in sorted(self.ap):
            if class_id in groups:
                members.setdefault(groups[class_id], []).append(self.ap[class_id])
        return {name: float(np.mean(values)) for name, values in members.items()}

    def to_dict(self, groups: Mapping[int, str] | None = None) -> dict[str, object]:
        """JSON-ready summary (NaN written as null)."""
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        out: dict[str, object] = {
            "mAP": clean(self.mean_ap),
            "iou_threshold": IOU_THRESHOLD,
            "max_detections_per_keyframe": MAX_DETECTIONS_PER_KEYFRAME,
            "classes": [
                {"id": c, "name": self.names[c], "ap": clean(self.ap.get(c, math.nan)),
                 "num_gt": self.num_gt[c], "num_detections": self.num_detections[c]}
                for c in sorted(self.names)
            ],
            "unscored": list(self.unscored),
            "counts": dict(self.counts),
        }
        if groups is not None:
            out["groups"] = self.group_means(groups)
        return out


@dataclass(frozen=True)
class _Table:
    """Rows as columns. key: key-frame index; cls: class index; box: y1, x1, y2, x2 (the
    official's coordinate order, so IoU is computed with the same arithmetic)."""

    key: np.ndarray  # [N] int64
    cls: np.ndarray  # [N] int64
    score: np.ndarray  # [N] float64
    box: np.ndarray  # [N, 4] float64

    def take(self, idx: np.ndarray) -> _Table:
        return _Table(self.key[idx], self.cls[idx], self.score[idx], self.box[idx])

    @staticmethod
    def concat(parts: Sequence[_Table]) -> _Table:
        return _Table(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("key", "cls", "score", "box")))


def _columns(
    rows: Sequence[Row], side: str, class_ids: np.ndarray, keys: dict[Key, int], scored: bool
) -> tuple[_Table, int]:
    """Rows of label-map classes as a `_Table` (key frames numbered in order of first
    appearance), and how many rows were ignored for their class."""
    n = len(rows)
    for i, row in enumerate(rows):
        if row.action_id is None or (scored and (row.value is None
                                                 or not math.isfinite(row.value))):
            need = "an action id and a finite score" if scored else "an action id"
            raise ValueError(f"{side} row {i} ({row.video_id},{row.timestamp}) needs {need}")
    action = np.fromiter((r.action_id for r in rows), np.int64, n)
    keep = np.flatnonzero(np.isin(action, class_ids))
    picked = [rows[i] for i in keep.tolist()]
    key = np.fromiter((keys.setdefault((r.video_id, r.timestamp), len(keys)) for r in picked),
                      np.int64, len(picked))
    score = np.fromiter((1.0 if r.value is None else r.value for r in picked), np.float64,
                        len(picked))
    box = np.fromiter((r.box for r in picked), np.dtype((np.float64, 4)), len(picked))
    box = box.reshape(-1, 4)[:, [1, 0, 3, 2]]  # x1,y1,x2,y2 -> y1,x1,y2,x2
    return _Table(key, np.searchsorted(class_ids, action[keep]), score, box), n - len(picked)


def _heap_list(entries: list[_Entry], capacity: int | None) -> list[_Entry]:
    """The official reader's list for one key frame: a min-heap bounded at `capacity` fed in
    file order (when full, a row replaces the smallest only if its score is strictly higher),
    then stably sorted by descending score."""
    heap: list[_Entry] = []
    for entry in entries:
        if capacity is None or len(heap) < capacity:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return sorted(heap, key=lambda e: -e[0])


def _literal(t: _Table, keys: np.ndarray, rows_of: list[np.ndarray],
             capacity: int | None) -> tuple[_Table, np.ndarray]:
    """`_heap_list` for the given key frames (rows of each in file order) -> rows and ranks."""
    parts, ranks = [], []
    for k, rows in zip(keys.tolist(), rows_of, strict=True):
        entries = [(s, c, *b) for s, c, b in
                   zip(t.score[rows].tolist(), t.cls[rows].tolist(), t.box[rows].tolist(),
                       strict=True)]
        listed = np.array(_heap_list(entries, capacity), dtype=np.float64).reshape(-1, 6)
        parts.append(_Table(np.full(len(listed), k, np.int64), listed[:, 1].astype(np.int64),
                            listed[:, 0].copy(), listed[:, 2:].copy()))
        ranks.append(np.arange(len(listed)))
    return _Table.concat(parts), np.concatenate(ranks)


def _official_lists(t: _Table, n_keys: int, capacity: int | None) -> tuple[_Table, np.ndarray]:
    """The rows the official reader keeps per key frame, and each row's rank in that list."""
    n = t.score.size
    order = np.lexsort((np.arange(n), -t.score, t.key))  # key, score descending, file order
    counts = np.bincount(t.key, minlength=n_keys)
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - starts[t.key[order]]
    kept = rank < capacity if capacity is not None else np.ones(n, bool)
    literal = np.zeros(n_keys, bool)
    if capacity is not None:
        full = np.flatnonzero(counts > capacity)
        last, first_out = starts[full] + capacity - 1, starts[full] + capacity
        literal[full[t.score[order[last]] == t.score[order[first_out]]]] = True
    # Equal scores within one key frame and class: their relative order is the heap's.
    rows = order[kept]
    rows = rows[np.lexsort((t.score[rows], t.cls[rows], t.key[rows]))]
    same = np.ones(max(rows.size - 1, 0), bool)
    for column in (t.key, t.cls, t.score):
        same &= column[rows[1:]] == column[rows[:-1]]
    literal[t.key[rows[1:][same]]] = True

    fast = kept & ~literal[t.key[order]]
    table, ranks = t.take(order[fast]), rank[fast]
    slow = np.flatnonzero(literal)
    if slow.size:
        rows_of = [np.sort(order[starts[k]:starts[k] + counts[k]]) for k in slow.tolist()]
        extra, extra_ranks = _literal(t, slow, rows_of, capacity)
        table, ranks = _Table.concat([table, extra]), np.concatenate([ranks, extra_ranks])
    return table, ranks


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of [P,4] y1,x1,y2,x2 boxes, in the official's arithmetic."""
    h = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]))
    w = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]))
    inter = h * w
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def _true_positives(det: _Table, gt: _Table, n_keys: int) -> np.ndarray:
    """TP flags of detections already sorted by (class, key frame, list rank), against ground
    truth sorted the same way. A detection's best box does not depend on earlier matches, so
    greedy matching reduces to: the first detection whose best box is box g (IoU >= 0.5)."""
    det_code = det.cls * n_keys + det.key
    gt_code = gt.cls * n_keys + gt.key
    lo = np.searchsorted(gt_code, det_code, "left")
    n_gt = np.searchsorted(gt_code, det_code, "right") - lo
    tp = np.zeros(det_code.size, bool)
    has = np.flatnonzero(n_gt)
    if has.size == 0:
        return tp
    n_pairs = n_gt[has]
    seg = np.cumsum(n_pairs) - n_pairs  # first pair of each detection that has boxes
    pair_det = np.repeat(has, n_pairs)  # [P]
    pair_gt = lo[pair_det] + np.arange(pair_det.size) - np.repeat(seg, n_pairs)
    iou = _iou(det.box[pair_det], gt.box[pair_gt])
    best = np.maximum.reduceat(iou, seg)
    is_best = iou == np.repeat(best, n_pairs)
    first_best = np.minimum.reduceat(np.where(is_best, np.arange(iou.size), iou.size), seg)
    hit = best >= IOU_THRESHOLD
    _, first = np.unique(pair_gt[first_best[hit]], return_index=True)
    tp[has[hit][first]] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """VOC AP over all recall points (precision envelope), detections ranked like the
    official (`np.argsort(scores)[::-1]`, so equal scores keep its order)."""
    if scores.size == 0:
        return 0.0
    ranked = tp[np.argsort(scores)[::-1]]
    cum_tp = np.cumsum(ranked)
    cum_fp = np.cumsum(~ranked)
    recall = np.concatenate([[0.0], cum_tp / num_gt, [1.0]])
    precision = np.concatenate([[0.0], cum_tp / (cum_tp + cum_fp), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _drop_excluded(t: _Table, excluded: np.ndarray) -> tuple[_Table, int]:
    keep = ~excluded[t.key]
    return t.take(np.flatnonzero(keep)), int(np.unique(t.key[~keep]).size)


def evaluate(
    gt_rows: Sequence[Row],
    pred_rows: Sequence[Row],
    labels: Mapping[int, str],
    exclusions: Collection[Key] = frozenset(),
) -> EvalResult:
    """Frame mAP of `pred_rows` (value = score) against `gt_rows` (value = person id or None)
    over the classes of `labels`; `exclusions` are (video_id, timestamp) key frames."""
    if not labels or min(labels) < 1:
        raise ValueError(f"label map ids must be >= 1 and there must be some: {sorted(labels)}")
    class_ids = np.array(sorted(labels), np.int64)
    keys: dict[Key, int] = {}  # predictions first: their key frame order is the official's
    pred, pred_ignored = _columns(pred_rows, "prediction", class_ids, keys, scored=True)
    gt, gt_ignored = _columns(gt_rows, "ground truth", class_ids, keys, scored=False)
    n_keys = len(keys)
    excluded = np.fromiter((k in exclusions for k in keys), bool, n_keys)
    pred, pred_excluded = _drop_excluded(pred, excluded)
    gt, gt_excluded = _drop_excluded(gt, excluded)

    det, det_rank = _official_lists(pred, n_keys, MAX_DETECTIONS_PER_KEYFRAME)
    capped = pred.score.size - det.score.size
    valid = (det.box[:, 0] < det.box[:, 2]) & (det.box[:, 1] < det.box[:, 3])
    det, det_rank = det.take(np.flatnonzero(valid)), det_rank[valid]
    gt, gt_rank = _official_lists(gt, n_keys, None)
    det = det.take(np.lexsort((det_rank, det.key, det.cls)))
    gt = gt.take(np.lexsort((gt_rank, gt.key, gt.cls)))
    tp = _true_positives(det, gt, n_keys)

    n_classes = class_ids.size
    num_gt = np.bincount(gt.cls, minlength=n_classes)
    bounds = np.searchsorted(det.cls, np.arange(n_classes + 1))
    ap: dict[int, float] = {}
    for c in np.flatnonzero(num_gt).tolist():
        seg = slice(bounds[c], bounds[c + 1])
        ap[int(class_ids[c])] = average_precision(det.score[seg].copy(), tp[seg], num_gt[c])
    # The official averages a per-id array with NaN for ids without ground truth.
    by_id = np.full(int(class_ids[-1]), np.nan)
    for class_id, value in ap.items():
        by_id[class_id - 1] = value
    mean_ap = float(np.nanmean(by_id)) if ap else math.nan
    counts = {
        "gt_rows": int(gt.score.size), "pred_rows_scored": int(det.score.size),
        "gt_keyframes": int(np.unique(gt.key).size),
        "pred_keyframes": int(np.unique(pred.key).size),
        "gt_rows_ignored_class": gt_ignored, "pred_rows_ignored_class": pred_ignored,
        "gt_keyframes_excluded": gt_excluded, "pred_keyframes_excluded": pred_excluded,
        "pred_rows_over_cap": int(capped), "pred_rows_degenerate_box": int((~valid).sum()),
    }
    return EvalResult(
        mean_ap=mean_ap, ap=ap, names=dict(sorted(labels.items())),
        num_gt={int(i): int(n) for i, n in zip(class_ids, num_gt, strict=True)},
        num_detections={int(i): int(bounds[c + 1] - bounds[c])
                        for c, i in enumerate(class_ids)},
        counts=counts,
    )
