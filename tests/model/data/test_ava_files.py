from __future__ import annotations

from pathlib import Path

import pytest

from model.data.ava_files import (
    AvaFormatError,
    Row,
    read_exclusions,
    read_label_map,
    read_numbered_rows,
    read_rows,
    write_exclusions,
    write_label_map,
    write_rows,
)
from model.labels import read_pbtxt

ROWS = [
    Row("-5KQ66BBWC4", 902, (0.077, 0.151, 0.283, 0.811), 80, 1.0),
    Row("-5KQ66BBWC4", 1798, (0.0, 0.0, 1.0, 1.0), 12, 0.123456789012345),
    Row("-5KQ66BBWC4", 1798, (0.0, 0.0, 1.0, 1.0), 14, 0.5),  # same box, next class
    Row("vid_b", 7, (0.1, 0.2, 0.1, 0.2), 3, 1e-9),
]


@pytest.mark.parametrize("value", ["person_id", "score"])
def test_rows_round_trip_exactly(tmp_path: Path, value: str) -> None:
    path = tmp_path / "rows.csv"
    write_rows(path, ROWS, value)  # type: ignore[arg-type]
    assert read_rows(path, value) == ROWS  # type: ignore[arg-type]
    # no temp files left behind by the atomic write
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


def test_written_file_uses_ava_layout(tmp_path: Path) -> None:
    path = tmp_path / "gt.csv"
    write_rows(path, [Row("v", 902, (0.077, 0.151, 0.283, 0.811), 80, 3.0)], "person_id")
    assert path.read_text() == "v,0902,0.077,0.151,0.283,0.811,80,3\n"


def test_reads_ava_timestamps_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ava.csv"
    path.write_text("\n-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n"
                    "-5KQ66BBWC4,0902,0.226,0.032,0.366,0.497,12,0\n")
    numbered = read_numbered_rows(path, "person_id")
    assert [n for n, _ in numbered] == [2, 3]
    assert numbered[0][1] == Row("-5KQ66BBWC4", 902, (0.077, 0.151, 0.283, 0.811), 80, 1.0)
    assert numbered[1][1].value == 0.0


def test_spaces_quotes_and_byte_order_mark_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "loose.csv"
    path.write_text('\ufeff v , 0902 ,0.1,0.2,0.3,0.4, 5 ,0.9\r\n"w",1,0.1,0.2,0.3,0.4,5,0.8\n',
                    encoding="utf-8")
    assert read_rows(path, "score") == [Row("v", 902, (0.1, 0.2, 0.3, 0.4), 5, 0.9),
                                        Row("w", 1, (0.1, 0.2, 0.3, 0.4), 5, 0.8)]


def test_empty_action_column_for_person_box_files(tmp_path: Path) -> None:
    path = tmp_path / "persons.csv"
    path.write_text("v,0003,0.1,0.2,0.3,0.4,,0.97\n")
    rows = read_rows(path, "score", require_action=False)
    assert rows == [Row("v", 3, (0.1, 0.2, 0.3, 0.4), None, 0.97)]
    write_rows(tmp_path / "again.csv", rows, "score")
    assert (tmp_path / "again.csv").read_text() == "v,0003,0.1,0.2,0.3,0.4,,0.97\n"
    with pytest.raises(AvaFormatError, match=r"persons\.csv:1: empty action_id"):
        read_rows(path, "score")


def test_seven_columns_give_no_value(tmp_path: Path) -> None:
    path = tmp_path / "gt7.csv"
    path.write_text("v,1,0.1,0.2,0.3,0.4,5\n")
    assert read_rows(path, "person_id") == [Row("v", 1, (0.1, 0.2, 0.3, 0.4), 5, None)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("v,1,-0.1,0.2,0.3,0.4,5,0.9", r"x1=-0\.1 is outside \[0, 1\]"),
        ("v,1,0.1,0.2,0.3,1.5,5,0.9", r"y2=1\.5 is outside \[0, 1\]"),
        ("v,1,0.5,0.2,0.3,0.4,5,0.9", r"box \(.*\) needs x1 <= x2 and y1 <= y2"),
        ("v,1,0.1,0.5,0.3,0.4,5,0.9", r"box \(.*\) needs x1 <= x2 and y1 <= y2"),
        ("v,1,0.1,0.2,0.3,0.4,5,0.9,7", r"9 columns, expected 7 or 8"),
        ("v,1,0.1,0.2,0.3", r"5 columns, expected 7 or 8"),
        ("v,one,0.1,0.2,0.3,0.4,5,0.9", r"timestamp 'one' is not a whole number"),
        ("v,1.5,0.1,0.2,0.3,0.4,5,0.9", r"timestamp '1\.5' is not a whole number"),
        ("v,-1,0.1,0.2,0.3,0.4,5,0.9", r"timestamp '-1' must be >= 0"),
        ("v,1,abc,0.2,0.3,0.4,5,0.9", r"x1 'abc' is not a number"),
        ("v,1,nan,0.2,0.3,0.4,5,0.9", r"x1 'nan' must be finite"),
        ("v,1,0.1,0.2,0.3,0.4,walk,0.9", r"action_id 'walk' is not a whole number"),
        ("v,1,0.1,0.2,0.3,0.4,5,high", r"score 'high' is not a number"),
        (",1,0.1,0.2,0.3,0.4,5,0.9", r"empty video_id"),
        ("video_id,timestamp,x1,y1,x2,y2,action_id,score", r"timestamp 'timestamp'"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"v,1,0.1,0.2,0.3,0.4,5,0.9\n\n{line}\n")
    with pytest.raises(AvaFormatError, match=rf"bad\.csv:3: {message}"):
        read_rows(path, "score")


def test_empty_file_is_valid_and_missing_file_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert read_rows(empty, "score") == []
    assert read_exclusions(empty) == set()
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_rows(tmp_path / "missing.csv", "score")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_exclusions(tmp_path / "nope.csv")


def test_write_rejects_video_ids_that_break_the_csv(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video_id"):
        write_rows(tmp_path / "x.csv", [Row("a,b", 1, (0.0, 0.0, 1.0, 1.0), 1, 0.5)], "score")
    assert not (tmp_path / "x.csv").exists()


def test_exclusions_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "ex.csv"
    keys = {("b", 902), ("a", 1), ("a", 1798)}
    write_exclusions(path, keys)
    assert path.read_text() == "a,0001\na,1798\nb,0902\n"
    assert read_exclusions(path) == keys
    path.write_text("a,0001\na,0002,x\n")
    with pytest.raises(AvaFormatError, match=r"ex\.csv:2: 3 columns, expected 2"):
        read_exclusions(path)
    path.write_text("a,t\n")
    with pytest.raises(AvaFormatError, match=r"ex\.csv:1: timestamp 't'"):
        read_exclusions(path)


def test_label_map_round_trip(tmp_path: Path) -> None:
    labels = {1: "bend/bow (at the waist)", 80: 'say "hi"', 12: "back\\slash"}
    path = tmp_path / "map.pbtxt"
    write_label_map(path, labels)
    assert read_label_map(path) == labels
    assert list(read_pbtxt(path.read_text())) == [1, 12, 80]  # sorted by id
    with pytest.raises(ValueError, match="cannot be stored"):
        write_label_map(tmp_path / "bad.pbtxt", {1: "a}b"})


def test_label_map_reads_the_shipped_ava_file() -> None:
    shipped = Path(__file__).parents[3] / "model" / "labels"
    labels = read_label_map(shipped / "ava_action_list_v2.2_for_activitynet_2019.pbtxt")
    assert len(labels) == 60
    assert labels[1] == "bend/bow (at the waist)"


def test_label_map_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pbtxt"
    path.write_text("nothing here")
    with pytest.raises(ValueError, match=r"broken\.pbtxt"):
        read_label_map(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.pbtxt"):
        read_label_map(tmp_path / "absent.pbtxt")
