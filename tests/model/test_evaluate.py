from __future__ import annotations

import heapq
import json
import math
import random
import re
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from model.data.ava_files import Row, write_exclusions, write_label_map, write_rows
from model.evaluate import average_precision, evaluate

LABELS = {1: "stand", 2: "ride", 3: "talk to"}
A = (0.0, 0.0, 0.4, 0.5)  # x1, y1, x2, y2
B = (0.6, 0.5, 1.0, 1.0)
FAR = (0.9, 0.0, 1.0, 0.1)  # overlaps neither A nor B


def gt(video: str, t: int, box: tuple[float, ...], cls: int, person: float = 0.0) -> Row:
    return Row(video, t, box, cls, person)  # type: ignore[arg-type]


def det(video: str, t: int, box: tuple[float, ...], cls: int, score: float) -> Row:
    return Row(video, t, box, cls, score)  # type: ignore[arg-type]


# ---------------------------------------------------------------- reference (loop-based)
# A straightforward re-statement of the official ActivityNet AVA evaluator, one key frame and
# one detection at a time, written without looking at the vectorised code.


def _ref_read(rows: Sequence[Row], labels: Collection[int], capacity: int) -> dict:
    lists: dict = {}
    for r in rows:
        if r.action_id not in labels:
            continue
        score = 1.0 if r.value is None else r.value
        x1, y1, x2, y2 = r.box
        entry = (score, r.action_id, y1, x1, y2, x2)
        heap = lists.setdefault((r.video_id, r.timestamp), [])
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, entry)
        elif score > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return {k: sorted(h, key=lambda e: -e[0]) for k, h in lists.items()}


def _ref_iou(d: tuple, g: tuple) -> float:  # y1, x1, y2, x2
    h = max(0.0, min(d[2], g[2]) - max(d[0], g[0]))
    w = max(0.0, min(d[3], g[3]) - max(d[1], g[1]))
    inter = h * w
    return inter / ((d[2] - d[0]) * (d[3] - d[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)


def _ref_ap(scores: list[float], labels: list[bool], num_gt: int) -> float:
    if not scores:
        return 0.0
    order = np.argsort(np.array(scores, dtype=float))[::-1]
    tp = fp = 0
    recall, precision = [0.0], [0.0]
    for i in order:
        tp, fp = tp + labels[i], fp + (not labels[i])
        recall.append(tp / num_gt)
        precision.append(tp / (tp + fp))
    recall.append(1.0)
    precision.append(0.0)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    return sum((recall[i] - recall[i - 1]) * precision[i]
               for i in range(1, len(recall)) if recall[i] != recall[i - 1])


def reference(gt_rows: Sequence[Row], pred_rows: Sequence[Row], labels: Mapping[int, str],
              exclusions: Collection[tuple[str, int]] = ()) -> tuple[dict[int, float], float]:
    truth = _ref_read(gt_rows, labels, 0)
    found = _ref_read(pred_rows, labels, 50)
    num_gt: dict[int, int] = defaultdict(int)
    for key, entries in truth.items():
        for e in entries:
            num_gt[e[1]] += key not in exclusions
    scores: dict[int, list[float]] = defaultdict(list)
    hits: dict[int, list[bool]] = defaultdict(list)
    for key, entries in found.items():
        if key in exclusions:
            continue
        valid = [e for e in entries if e[2] < e[4] and e[3] < e[5]]
        for c in labels:
            boxes = [e[2:] for e in truth.get(key, []) if e[1] == c]
            taken = [False] * len(boxes)
            for e in (e for e in valid if e[1] == c):
                hit = False
                if boxes:
                    ious = [_ref_iou(e[2:], b) for b in boxes]
                    best = ious.index(max(ious))
                    if ious[best] >= 0.5 and not taken[best]:
                        taken[best] = hit = True
                scores[c].append(e[0])
                hits[c].append(hit)
    ap = {c: _ref_ap(scores[c], hits[c], num_gt[c]) for c in sorted(labels) if num_gt[c]}
    return ap, (sum(ap.values()) / len(ap) if ap else math.nan)


# ---------------------------------------------------------------- random data


def random_case(seed: int) -> tuple[list[Row], list[Row], dict[int, str], set]:
    """Many classes and key frames; coarse grids so IoU and score ties happen; duplicates,
    over-full key frames, degenerate boxes, classes outside the label map, exclusions."""
    rng = random.Random(seed)
    distinct = seed % 3 == 0  # one row per class and key frame: score ties only at the cut
    labels = {c: f"c{c}" for c in rng.sample(range(1, 90), 75 if distinct else 12)}
    classes = [*labels, 95, 96]  # 95, 96: not in the label map
    # distinct: ground truth in few classes and coarse scores, so cut ties hit true positives
    gt_classes = [*classes[:6], 95] if distinct else classes
    grid = rng.choice([0.05, 0.1, 0.25])
    score_digits = 1 if distinct else rng.choice([1, 2, 6])

    def box() -> tuple[float, ...]:
        x1, y1 = rng.randrange(0, 8) * grid / 2, rng.randrange(0, 8) * grid / 2
        return (x1, y1, min(1.0, x1 + rng.randint(0, 6) * grid),
                min(1.0, y1 + rng.randint(1, 6) * grid))

    gts, preds, keys = [], [], []
    for v in range(rng.randint(2, 5)):
        for t in rng.sample(range(900, 960), rng.randint(3, 12)):
            keys.append((f"vid{v}", t))
    for video, t in keys:
        persons = [box() for _ in range(rng.randint(0, 4))]
        for pid, person in enumerate(persons):
            for c in rng.sample(gt_classes, rng.randint(1, 3)):
                gts.append(Row(video, t, person, c, rng.choice([pid, pid, None])))
        n = rng.choice([20, 49, 50, 51, 70] if distinct else [3, 20, 49, 50, 51, 70])
        row_classes = (rng.sample(gt_classes, 7) + rng.sample(classes[6:-1], n - 7) if distinct
                       else rng.choices(classes, k=n))
        for cls in row_classes:
            source = rng.choice([*persons, box()]) if persons else box()
            jitter = tuple(min(1.0, max(0.0, v + rng.choice([0, 0, grid / 2, -grid / 2])))
                           for v in source)
            x1, y1, x2, y2 = jitter
            b = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            preds.append(Row(video, t, b, cls, round(rng.random(), score_digits)))
        if preds and not distinct and rng.random() < 0.3:
            preds.append(preds[-1])  # exact duplicate row
    rng.shuffle(gts)
    rng.shuffle(preds)
    exclusions = set(rng.sample(keys, len(keys) // 5)) | {("never", 1)}
    return gts, preds, labels, exclusions


@pytest.mark.parametrize("seed", range(24))
def test_matches_the_loop_reference_on_random_data(seed: int) -> None:
    gts, preds, labels, exclusions = random_case(seed)
    want_ap, want_map = reference(gts, preds, labels, exclusions)
    got = evaluate(gts, preds, labels, exclusions)
    assert set(got.ap) == set(want_ap)
    for c, value in want_ap.items():
        assert got.ap[c] == pytest.approx(value, abs=1e-9), c
    assert got.mean_ap == pytest.approx(want_map, abs=1e-9)


def test_random_data_covers_the_hard_cases() -> None:
    """The random cases above do reach over-full key frames, exclusions, degenerate boxes and
    classes outside the label map."""
    seen = defaultdict(int)
    for seed in range(24):
        gts, preds, labels, exclusions = random_case(seed)
        counts = evaluate(gts, preds, labels, exclusions).counts
        for name in ("pred_rows_over_cap", "pred_keyframes_excluded", "pred_rows_ignored_class",
                     "pred_rows_degenerate_box", "gt_keyframes_excluded"):
            seen[name] += counts[name] > 0
    assert min(seen.values()) >= 5, dict(seen)


# ---------------------------------------------------------------- hand-computed cases


def test_perfect_predictions_give_map_one() -> None:
    truth = [gt("v", 1, A, 1, 0), gt("v", 1, A, 2, 0), gt("v", 1, B, 1, 1), gt("w", 3, B, 3, 0)]
    preds = [Row(r.video_id, r.timestamp, r.box, r.action_id, 0.5) for r in truth]
    result = evaluate(truth, preds, LABELS)
    assert result.ap == {1: 1.0, 2: 1.0, 3: 1.0}
    assert result.mean_ap == 1.0


def test_empty_predictions_give_zero_ap() -> None:
    result = evaluate([gt("v", 1, A, 1), gt("v", 1, B, 2)], [], LABELS)
    assert result.ap == {1: 0.0, 2: 0.0}
    assert result.mean_ap == 0.0


def test_class_without_ground_truth_is_left_out_of_the_mean() -> None:
    truth = [gt("v", 1, A, 1), gt("v", 1, B, 2)]
    preds = [det("v", 1, A, 1, 0.9), det("v", 1, FAR, 2, 0.9), det("v", 1, B, 3, 0.9)]
    result = evaluate(truth, preds, LABELS)
    assert result.ap == {1: 1.0, 2: 0.0}
    assert result.unscored == (3,)
    assert result.mean_ap == 0.5  # (1 + 0) / 2; class 3's false positive changes nothing
    assert result.num_detections == {1: 1, 2: 1, 3: 1}


def test_duplicate_detection_is_a_false_positive() -> None:
    truth = [gt("v", 1, A, 1, 0), gt("v", 1, B, 1, 1)]
    preds = [det("v", 1, A, 1, 0.9), det("v", 1, A, 1, 0.8), det("v", 1, B, 1, 0.7)]
    # ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 * 1 + 1/2 * 2/3
    assert evaluate(truth, preds, LABELS).ap[1] == pytest.approx(0.5 + 1 / 3, abs=1e-12)


def test_detection_whose_best_box_is_taken_does_not_fall_back() -> None:
    a, b = (0.0, 0.0, 0.4, 0.5), (0.2, 0.0, 0.6, 0.5)
    second = (0.08, 0.0, 0.48, 0.5)  # IoU 0.667 with a (taken), 0.538 with b (free)
    truth = [gt("v", 1, a, 1, 0), gt("v", 1, b, 1, 1)]
    preds = [det("v", 1, a, 1, 0.9), det("v", 1, second, 1, 0.8)]
    # VOC: the second detection is a false positive, so recall stops at 1/2
    assert evaluate(truth, preds, LABELS).ap[1] == pytest.approx(0.5, abs=1e-12)


G1, G2 = (0.0, 0.0, 0.5, 0.5), (0.25, 0.0, 0.75, 0.5)
MIDDLE = (0.125, 0.0, 0.625, 0.5)  # IoU exactly 0.6 with both G1 and G2


@pytest.mark.parametrize(
    ("truth", "ap"),
    [
        ([gt("v", 1, G1, 1, 1), gt("v", 1, G2, 1, 0)], 1.0),  # higher person id first: G1
        ([gt("v", 1, G1, 1, 0), gt("v", 1, G2, 1, 1)], 0.5),  # G2 first
        # no person ids: the official heap lists G1 first although the file has G2 first
        ([Row("v", 1, G2, 1, None), Row("v", 1, G1, 1, None)], 1.0),
    ],
)
def test_equal_iou_goes_to_the_first_box_in_the_official_order(truth: list[Row],
                                                                ap: float) -> None:
    # The 0.9 detection ties between G1 and G2 and takes the first; the 0.8 detection is G2
    # itself, so it is a true positive only if the first detection took G1.
    preds = [det("v", 1, MIDDLE, 1, 0.9), det("v", 1, G2, 1, 0.8)]
    assert evaluate(truth, preds, LABELS).ap[1] == ap
    assert reference(truth, preds, LABELS)[0][1] == ap


@pytest.mark.parametrize(
    ("width", "ap"),
    [
        (0.199, 0.0),  # IoU 0.4975
        (0.201, 1.0),  # IoU 0.5025
        (0.25, 1.0),   # IoU exactly 0.5 in binary: 0.25 / (0.25 + 0.5 - 0.25); >= counts
    ],
)
def test_iou_just_below_and_above_half(width: float, ap: float) -> None:
    box = (0.0, 0.0, 0.4, 1.0) if width != 0.25 else (0.0, 0.0, 0.5, 1.0)
    result = evaluate([gt("v", 1, box, 1)], [det("v", 1, (0.0, 0.0, width, 1.0), 1, 0.9)],
                      LABELS)
    assert result.ap[1] == ap


def test_excluded_key_frames_leave_both_sides() -> None:
    truth = [gt("v", 1, A, 1), gt("v", 2, B, 1)]
    preds = [det("v", 2, FAR, 1, 0.9), det("v", 1, A, 1, 0.8)]
    # without exclusions: ranked FP, TP over 2 boxes -> 1/2 recall at precision 1/2
    assert evaluate(truth, preds, LABELS).ap[1] == pytest.approx(0.25, abs=1e-12)
    result = evaluate(truth, preds, LABELS, exclusions={("v", 2)})
    assert result.ap[1] == 1.0
    assert result.num_gt[1] == 1
    assert result.counts["gt_keyframes_excluded"] == result.counts["pred_keyframes_excluded"] == 1


def _fillers(n: int, cls: int, score: float) -> list[Row]:
    return [det("v", 1, (0.9, 0.9, 0.95 + i * 1e-4, 0.95), cls, score) for i in range(n)]


@pytest.mark.parametrize(("fillers", "filler_class", "ap"), [
    (49, 2, 1.0),   # 50 rows: the true positive stays
    (50, 2, 0.0),   # 51 rows: the true positive (lowest score) is cut
    (60, 99, 1.0),  # rows of classes outside the label map never count towards the 50
])
def test_more_than_fifty_detections_on_a_key_frame(fillers: int, filler_class: int,
                                                    ap: float) -> None:
    truth = [gt("v", 1, A, 1), gt("w", 1, A, 2)]
    preds = [*_fillers(fillers, filler_class, 0.9), det("v", 1, A, 1, 0.5)]
    result = evaluate(truth, preds, LABELS)
    assert result.ap[1] == ap
    assert result.counts["pred_rows_over_cap"] == (1 if ap == 0.0 else 0)


@pytest.mark.parametrize(("cut", "ap"), [(None, 1.0), (51, 1.0), (50, 0.0), (10, 0.0)])
def test_the_cut_is_a_parameter(cut: int | None, ap: float) -> None:
    """None keeps every row: the true positive below 50 fillers of a higher score counts."""
    truth = [gt("v", 1, A, 1), gt("w", 1, A, 2)]
    preds = [*_fillers(50, 2, 0.9), det("v", 1, A, 1, 0.5)]
    result = evaluate(truth, preds, LABELS, max_per_keyframe=cut)
    assert result.ap[1] == ap
    assert result.max_per_keyframe == cut
    assert result.to_dict()["max_detections_per_keyframe"] == cut
    with pytest.raises(ValueError, match="max_per_keyframe"):
        evaluate(truth, preds, LABELS, max_per_keyframe=0)


@pytest.mark.parametrize("one_filler_class", [True, False])
def test_ties_at_the_cut_follow_the_official_heap(one_filler_class: bool) -> None:
    # 50 rows of score 0.5 fill the heap; a 0.6 row evicts the smallest (score, class, ...)
    # tuple, which is the class-1 true positive although it came first in the file.
    # (Fillers of one class also tie within a class; fillers of 49 classes only at the cut.)
    labels = {c: f"c{c}" for c in range(1, 52)}
    fillers = [det("v", 1, (0.9, 0.9, 0.95 + i * 1e-4, 0.95),
                   2 if one_filler_class else 2 + i, 0.5) for i in range(50)]
    truth = [gt("v", 1, A, 1), gt("w", 1, A, 2)]
    preds = [det("v", 1, A, 1, 0.5), *fillers[:49], det("v", 1, FAR, 51, 0.6)]
    assert evaluate(truth, preds, labels).ap[1] == 0.0
    assert reference(truth, preds, labels)[0][1] == 0.0
    # a 51st row with an equal score does not enter: the first 50 stay
    preds = [det("v", 1, A, 1, 0.5), *fillers]
    assert evaluate(truth, preds, labels).ap[1] == 1.0


def test_classes_not_in_the_label_map_are_ignored() -> None:
    truth = [gt("v", 1, A, 1), gt("v", 1, B, 99)]
    preds = [det("v", 1, A, 1, 0.9), det("v", 1, A, 99, 0.95)]
    result = evaluate(truth, preds, LABELS)
    assert result.ap == {1: 1.0}
    assert 99 not in result.num_gt
    assert result.counts["gt_rows_ignored_class"] == result.counts["pred_rows_ignored_class"] == 1


def test_degenerate_prediction_boxes_are_dropped() -> None:
    truth = [gt("v", 1, A, 1)]
    preds = [det("v", 1, (0.1, 0.1, 0.1, 0.4), 1, 0.99), det("v", 1, A, 1, 0.5)]
    result = evaluate(truth, preds, LABELS)
    assert result.ap[1] == 1.0  # the zero-width box is neither TP nor FP
    assert result.counts["pred_rows_degenerate_box"] == 1


def test_group_means() -> None:
    truth = [gt("v", 1, A, 1), gt("v", 1, B, 2), gt("v", 1, B, 3)]
    preds = [det("v", 1, A, 1, 0.9), det("v", 1, B, 2, 0.9)]
    result = evaluate(truth, preds, LABELS)
    assert result.group_means({1: "pose", 2: "object", 3: "object"}) == {
        "pose": 1.0, "object": 0.5}
    assert result.group_means({1: "pose"}) == {"pose": 1.0}


def test_average_precision_all_points_not_eleven() -> None:
    # TP, FP, TP over 4 boxes: 1/4 * 1 + 1/4 * 2/3 (the 11-point rule would give 0.545)
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 4)
    assert ap == pytest.approx(0.25 + 0.25 * 2 / 3, abs=1e-12)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([Row("v", 1, A, None, 0.5)], r"prediction row 0 \(v,1\) has no action id"),
        ([det("v", 1, A, 1, 0.5), Row("v", 1, A, 1, None)], "prediction row 1 .* finite score"),
        ([Row("v", 1, A, 1, math.nan)], "prediction row 0 .* finite score, not nan"),
    ],
)
def test_bad_rows_are_rejected(rows: list[Row], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate([gt("v", 1, A, 1)], rows, LABELS)
    with pytest.raises(ValueError, match="label map ids must be >= 1"):
        evaluate([], [], {0: "zero"})


# ---------------------------------------------------------------- the `aia eval` command


def _files(tmp_path: Path) -> list[str]:
    truth = [gt("v", 1, A, 1, 0), gt("v", 1, B, 2, 1), gt("v", 2, A, 1, 0)]
    preds = [det("v", 1, A, 1, 0.9), det("v", 1, FAR, 2, 0.8), det("v", 2, FAR, 1, 0.95)]
    write_rows(tmp_path / "gt.csv", truth, "person_id")
    write_rows(tmp_path / "pred.csv", preds, "score")
    write_label_map(tmp_path / "map.pbtxt", LABELS)
    write_exclusions(tmp_path / "ex.csv", [("v", 2)])
    return ["eval", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
            "--labelmap", str(tmp_path / "map.pbtxt")]


def test_cli_prints_a_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture
                                            ) -> None:
    args = _files(tmp_path)
    out = tmp_path / "out" / "eval.json"
    assert main([*args, "--exclusions", str(tmp_path / "ex.csv"), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert all(word in table for word in ("stand", "ride", "no ground truth", "mAP", "50.00"))
    report = json.loads(out.read_text())
    assert report["mAP"] == 0.5
    assert [c["ap"] for c in report["classes"]] == [1.0, 0.0, None]
    assert report["unscored"] == [3]
    # without the exclusions the 0.95 false positive on v,2 ranks first
    assert main(args) == 0
    assert "mAP" in capsys.readouterr().out


def test_cli_can_keep_every_row(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = [gt("v", 1, A, 1), gt("w", 1, A, 2)]
    write_rows(tmp_path / "gt.csv", truth, "person_id")
    write_rows(tmp_path / "pred.csv", [*_fillers(50, 2, 0.9), det("v", 1, A, 1, 0.5)], "score")
    write_label_map(tmp_path / "map.pbtxt", LABELS)
    args = ["eval", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
            "--labelmap", str(tmp_path / "map.pbtxt"), "--json", str(tmp_path / "e.json")]
    assert main(args) == 0
    assert json.loads((tmp_path / "e.json").read_text())["classes"][0]["ap"] == 0.0
    assert "not the official" not in capsys.readouterr().out
    assert main([*args, "--max-per-keyframe", "0"]) == 0
    assert "rows per key frame: all, not the official 50" in capsys.readouterr().out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["classes"][0]["ap"] == 1.0
    assert report["max_detections_per_keyframe"] is None
    assert main([*args, "--max-per-keyframe", "-1"]) == 2
    assert "--max-per-keyframe -1" in capsys.readouterr().err


def test_cli_groups_from_a_label_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("id,name,group,evaluated\n1,stand,pose,1\n2,ride,object,1\n3,talk,person,1\n")
    out = tmp_path / "eval.json"
    args = [*_files(tmp_path), "--groups", str(table), "--json", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["groups"] == {"pose": 0.25, "object": 0.0}
    assert "pose" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "text", "message"),
    [
        ("pred.csv", "v,1,0.1,0.1,0.2,0.2,1\n", r"pred\.csv:1: .*score"),
        ("pred.csv", "v,1,0.1,0.1,1.2,0.2,1,0.5\n", r"pred\.csv:1: x2=1\.2"),
        ("gt.csv", "v,1,0.1,0.1,0.2,0.2,1,0\nv,x,0.1,0.1,0.2,0.2,1,0\n", r"gt\.csv:2: timestamp"),
        ("map.pbtxt", "garbage", r"map\.pbtxt"),
        ("groups.csv", "id,name\n1,a\n", r"groups\.csv: needs columns id and group"),
        ("groups.csv", "id,group\none,pose\n", r"groups\.csv:2: id 'one'"),
    ],
)
def test_cli_names_file_and_line_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              target: str, text: str, message: str) -> None:
    args = _files(tmp_path)
    (tmp_path / target).write_text(text)
    if target == "groups.csv":
        args += ["--groups", str(tmp_path / target)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err


def test_eval_reads_the_services_csv_answers_with_person_ids(tmp_path):
    """`POST /v1/detect?format=ava_csv` rows end with the tracked person_id (9 columns)."""
    from cli.main import main

    labelmap = tmp_path / "labels.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\n')
    (tmp_path / "gt.csv").write_text("video,0001,0.1,0.1,0.5,0.9,12,0\n")
    (tmp_path / "pred.csv").write_text("video,1.000,0.10000,0.10000,0.50000,0.90000,12,0.9,3\n")
    out = tmp_path / "eval.json"
    assert main(["eval", "--gt", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
                 "--labelmap", str(labelmap), "--json", str(out)]) == 0
    import json

    assert json.loads(out.read_text())["mAP"] == 1.0
