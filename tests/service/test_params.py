"""Request parameters: every cost a request can ask for is bounded before work starts."""

from __future__ import annotations

import json

import pytest

from model.labels import Label
from service.errors import CostLimit, InvalidBoxes
from service.params import CostBounds, detect_params, parse_boxes
from service.settings import Settings

LABELS = (Label(1, "stand", "pose", True),)


def boxes(keyframes: int, persons: int) -> str:
    return json.dumps([{"timestamp": t, "boxes": [[0.1, 0.1, 0.5, 0.9]] * persons}
                       for t in range(keyframes)])


def test_bounds_come_from_settings() -> None:
    bounds = CostBounds.from_settings(Settings(max_keyframes=7, max_person_keyframes=9,
                                               max_field_bytes=100, max_persons=3))
    assert bounds == CostBounds(max_persons=3, max_keyframes=7, max_person_keyframes=9,
                                max_field_bytes=100)


def test_too_many_keyframes_names_the_bound() -> None:
    bounds = CostBounds(max_keyframes=10)
    assert len(parse_boxes(boxes(10, 1), bounds)) == 10
    with pytest.raises(CostLimit, match="AIA_MAX_KEYFRAMES") as err:
        parse_boxes(boxes(11, 1), bounds)
    assert err.value.extra == {"bound": "max_keyframes", "limit": 10}


def test_persons_times_keyframes_is_bounded() -> None:
    bounds = CostBounds(max_persons=8, max_person_keyframes=20)
    assert len(parse_boxes(boxes(4, 5), bounds)) == 4
    with pytest.raises(CostLimit, match="AIA_MAX_PERSON_KEYFRAMES"):
        parse_boxes(boxes(5, 5), bounds)


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, '{"a":' * 5000 + "1" + "}" * 5000,
                                  '[[[[["x"]]]]]'])
def test_deep_nesting_is_refused_without_recursing(text: str) -> None:
    with pytest.raises(InvalidBoxes, match="nested deeper"):
        parse_boxes(text, CostBounds())


def test_brackets_inside_strings_do_not_count() -> None:
    text = '[{"timestamp": 0, "boxes": [], "note": "[[[[[[[[\\"]]"}]'
    with pytest.raises(InvalidBoxes, match="expected"):  # an unknown key, not "nested"
        parse_boxes(text, CostBounds())


def test_any_oversized_field_is_refused() -> None:
    with pytest.raises(CostLimit, match="labels"):
        detect_params({"labels": "x" * 101}, LABELS, CostBounds(max_field_bytes=100))
