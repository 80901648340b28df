"""One loader for flat frozen dataclasses saved as JSON/YAML mappings (detector configs, an
artifact's input spec): lists come back as tuples, unknown keys are refused by name (or
skipped, for records that carry informational keys beside their fields)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def flat_from_dict(cls: type[T], data: Mapping[str, Any], error: type[Exception] = ValueError,
                   skip_unknown: bool = False) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown and not skip_unknown:
        raise error(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in names})
