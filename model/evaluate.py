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
from itertools import chain
from operator import attrgetter

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
    max_per_keyframe: int | None = MAX_DETECTIONS_PER_KEYFRAME  # the cut used (None: no cut)

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
            "max_detections_per_keyframe": self.max_per_keyframe,
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


_SECONDS = 1 << 32  # key-frame code = video index * _SECONDS + timestamp
_VIDEO, _TIME = attrgetter("video_id"), attrgetter("timestamp")
_ACTION, _VALUE, _BOX = attrgetter("action_id"), attrgetter("value"), attrgetter("box")


def _columns(rows: Sequence[Row], side: str, videos: dict[str, int],
             scored: bool) -> _Table:
    """All rows as columns; `key` holds a (video, second) code and `cls` the class id."""
    n = len(rows)
    try:
        action = np.fromiter(map(_ACTION, rows), np.int64, n)
    except TypeError:
        bad = next(i for i, r in enumerate(rows) if r.action_id is None)
        raise ValueError(f"{side} row {bad} ({rows[bad].video_id},{rows[bad].timestamp}) "
                         "has no action id") from None
    value = np.array(list(map(_VALUE, rows)), np.float64)  # None -> NaN
    if scored and not np.isfinite(value).all():
        bad = int(np.flatnonzero(~np.isfinite(value))[0])
        raise ValueError(f"{side} row {bad} ({rows[bad].video_id},{rows[bad].timestamp}) "
                         f"needs a finite score, not {rows[bad].value}")
    if not scored:
        value[np.isnan(value)] = 1.0  # the official's score of a row without person id
    names = list(map(_VIDEO, rows))
    for name in dict.fromkeys(names):
        videos.setdefault(name, len(videos))
    video = np.fromiter(map(videos.__getitem__, names), np.int64, n)
    second = np.fromiter(map(_TIME, rows), np.int64, n)
    if n and not 0 <= second.min() <= second.max() < _SECONDS:
        bad = int(np.flatnonzero((second < 0) | (second >= _SECONDS))[0])
        raise ValueError(f"{side} row {bad} ({rows[bad].video_id},{rows[bad].timestamp}): "
                         f"timestamps must be whole seconds in [0, {_SECONDS})")
    box = np.fromiter(chain.from_iterable(map(_BOX, rows)), np.float64, 4 * n).reshape(n, 4)
    code = video * _SECONDS + second
    return _Table(code, action, value, box[:, [1, 0, 3, 2]])  # -> y1, x1, y2, x2


def _number_keys(pred_code: np.ndarray, gt_code: np.ndarray) -> tuple[np.ndarray, ...]:
    """Key-frame indices in order of first appearance, predictions first (the official's
    order of key frames); returns (pred keys, gt keys, code of each key)."""
    codes, first, inverse = np.unique(np.concatenate([pred_code, gt_code]), return_index=True,
                                      return_inverse=True)
    by_first = np.argsort(first, kind="stable")
    index = np.empty_like(by_first)
    index[by_first] = np.arange(by_first.size)
    key = index[inverse]
    return key[:pred_code.size], key[pred_code.size:], codes[by_first]


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


def _stable_order(values: np.ndarray, bound: int) -> np.ndarray:
    """Stable argsort of ints in [0, bound): 16-bit radix passes, far faster than a
    comparison sort on millions of rows."""
    order = np.arange(values.size)
    for shift in range(0, max(bound - 1, 1).bit_length(), 16):
        digit = ((values[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
    return order


def _official_lists(t: _Table, n_keys: int, capacity: int | None) -> _Table:
    """The rows the official reader keeps per key frame, sorted by class, key frame and rank
    in the key frame's list (the order in which the official matches and concatenates)."""
    # Equal scores may land in any order here: where their order matters (a tie across the
    # cut, or inside one key frame and class) the key frame takes the literal heap below.
    by_score = np.argsort(-t.score)
    by_key = by_score[_stable_order(t.key[by_score], n_keys)]  # key, score descending
    counts = np.bincount(t.key, minlength=n_keys)
    starts = np.cumsum(counts) - counts
    order, rank = by_key, np.arange(t.score.size) - starts[t.key[by_key]]
    literal = np.zeros(n_keys, bool)
    if capacity is not None:
        full = np.flatnonzero(counts > capacity)
        cut_score = t.score[by_key[starts[full] + capacity - 1]]
        literal[full[cut_score == t.score[by_key[starts[full] + capacity]]]] = True
        order, rank = order[rank < capacity], rank[rank < capacity]
    by_class = _stable_order(t.cls[order], int(t.cls.max(initial=0)) + 1)
    order, rank = order[by_class], rank[by_class]  # class, key, rank
    key, cls, score = t.key[order], t.cls[order], t.score[order]
    same = (key[1:] == key[:-1]) & (cls[1:] == cls[:-1]) & (score[1:] == score[:-1])
    literal[key[1:][same]] = True

    fast = ~literal[key]
    slow = np.flatnonzero(literal)
    if slow.size == 0:
        return t.take(order)
    rows_of = [np.sort(by_key[starts[k]:starts[k] + counts[k]]) for k in slow.tolist()]
    extra, extra_rank = _literal(t, slow, rows_of, capacity)
    # Merge the literal key frames' rows into the sorted fast rows with one gather.
    rank = np.concatenate([rank[fast], extra_rank])
    code = (np.concatenate([cls[fast], extra.cls]) * n_keys
            + np.concatenate([key[fast], extra.key])) * (int(rank.max()) + 1) + rank
    source = np.concatenate([order[fast], t.score.size + np.arange(extra.score.size)])
    merged = source[np.argsort(code, kind="stable")]  # two sorted runs: a linear merge
    return _Table.concat([t, extra]).take(merged)


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


def _load(gt_rows: Sequence[Row], pred_rows: Sequence[Row], class_ids: np.ndarray,
          exclusions: Collection[Key]) -> tuple[_Table, _Table, int, dict[str, int]]:
    """Both sides as tables of label-map classes outside excluded key frames (class ids as
    indices into `class_ids`), the number of key frames, and what was dropped."""
    videos: dict[str, int] = {}
    sides = [_columns(pred_rows, "prediction", videos, True),
             _columns(gt_rows, "ground truth", videos, False)]
    keeps = [np.flatnonzero(np.isin(t.cls, class_ids)) for t in sides]
    keys = _number_keys(*(t.key[keep] for t, keep in zip(sides, keeps, strict=True)))
    excluded_codes = np.array([videos[v] * _SECONDS + t for v, t in exclusions
                               if v in videos and 0 <= t < _SECONDS], np.int64)
    excluded = np.isin(keys[2], excluded_codes)
    tables, dropped = [], {}
    for name, t, keep, key in zip(("pred", "gt"), sides, keeps, keys[:2], strict=True):
        inside = ~excluded[key]
        rows = keep[inside]
        tables.append(_Table(key[inside], np.searchsorted(class_ids, t.cls[rows]),
                             t.score[rows], t.box[rows]))
        dropped[f"{name}_rows_ignored_class"] = int(t.cls.size - keep.size)
        dropped[f"{name}_keyframes_excluded"] = int(np.unique(key[~inside]).size)
    return tables[0], tables[1], int(keys[2].size), dropped


def _mean_ap(ap: Mapping[int, float], max_id: int) -> float:
    """The official's mean: nanmean over a per-id array, NaN where a class has no AP."""
    if not ap:
        return math.nan
    if max_id > 1 << 16:  # absurd ids: same mean, without a huge array
        return float(np.mean([ap[c] for c in sorted(ap)]))
    by_id = np.full(max_id, np.nan)
    for class_id, value in ap.items():
        by_id[class_id - 1] = value
    return float(np.nanmean(by_id))


def evaluate(
    gt_rows: Sequence[Row],
    pred_rows: Sequence[Row],
    labels: Mapping[int, str],
    exclusions: Collection[Key] = frozenset(),
    max_per_keyframe: int | None = MAX_DETECTIONS_PER_KEYFRAME,
) -> EvalResult:
    """Frame mAP of `pred_rows` (value = score) against `gt_rows` (value = person id or None)
    over the classes of `labels`; `exclusions` are (video_id, timestamp) key frames.

    `max_per_keyframe` is the official 50-row cut; None scores every row. The cut is shared by
    all classes of a key frame, so with many persons and classes a class whose scores run
    lower than the others' loses rows to them (a diagnostic, not the official number)."""
    if not labels or min(labels) < 1:
        raise ValueError(f"label map ids must be >= 1 and there must be some: {sorted(labels)}")
    if max_per_keyframe is not None and max_per_keyframe < 1:
        raise ValueError(f"max_per_keyframe must be >= 1 or None, got {max_per_keyframe}")
    class_ids = np.array(sorted(labels), np.int64)
    pred, gt, n_keys, dropped = _load(gt_rows, pred_rows, class_ids, exclusions)
    det = _official_lists(pred, n_keys, max_per_keyframe)
    valid = (det.box[:, 0] < det.box[:, 2]) & (det.box[:, 1] < det.box[:, 3])
    det = det.take(np.flatnonzero(valid))
    gt = _official_lists(gt, n_keys, None)
    tp = _true_positives(det, gt, n_keys)

    num_gt = np.bincount(gt.cls, minlength=class_ids.size)
    bounds = np.searchsorted(det.cls, np.arange(class_ids.size + 1))
    ap: dict[int, float] = {}
    for c in np.flatnonzero(num_gt).tolist():
        seg = slice(bounds[c], bounds[c + 1])
        ap[int(class_ids[c])] = average_precision(det.score[seg].copy(), tp[seg], num_gt[c])
    counts = {
        "gt_rows": int(gt.score.size), "pred_rows_scored": int(det.score.size),
        "gt_keyframes": int(np.unique(gt.key).size),
        "pred_keyframes": int(np.unique(pred.key).size),
        **dropped,
        "pred_rows_over_cap": int(pred.score.size - valid.size),
        "pred_rows_degenerate_box": int((~valid).sum()),
    }
    return EvalResult(
        mean_ap=_mean_ap(ap, int(class_ids[-1])), ap=ap, names=dict(sorted(labels.items())),
        num_gt={int(i): int(n) for i, n in zip(class_ids, num_gt, strict=True)},
        num_detections={int(i): int(bounds[c + 1] - bounds[c])
                        for c, i in enumerate(class_ids)},
        counts=counts, max_per_keyframe=max_per_keyframe,
    )
