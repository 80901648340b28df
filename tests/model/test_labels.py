from __future__ import annotations

import pytest

from model.config import AVA_GROUPS
from model.labels import LABEL_DIR, ava_labels, read_pbtxt


def shipped(name: str) -> str:
    return (LABEL_DIR / name).read_text()


def test_ava_labels_match_groups_and_pbtxt() -> None:
    labels = ava_labels()
    assert [label.id for label in labels] == list(range(1, 81))
    assert sum(label.evaluated for label in labels) == 60
    names = read_pbtxt(shipped("ava_action_list_v2.2_80.pbtxt"))
    assert {label.id: label.name for label in labels} == names
    evaluated = read_pbtxt(shipped("ava_action_list_v2.2_for_activitynet_2019.pbtxt"))
    assert set(evaluated) == {label.id for label in labels if label.evaluated}
    for group in AVA_GROUPS:
        assert {label.group for label in labels
                if group.first_id <= label.id <= group.last_id} == {group.name}


def test_pbtxt_errors_name_the_source() -> None:
    with pytest.raises(ValueError, match=r"bad\.pbtxt: item 0"):
        read_pbtxt('item { name: "x" }', "bad.pbtxt")
    with pytest.raises(ValueError, match="no `item"):
        read_pbtxt("", "empty.pbtxt")
    assert read_pbtxt('item {\n  name: "a \\"b\\""\n  label_id: 3\n}') == {3: 'a \\"b\\"'}
