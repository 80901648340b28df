"""DetectorConfig: everything that shapes the detector network, saved in its checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from model.records import flat_from_dict

# Class id 0 is the background (torchvision convention); ids 1.. are the detected classes.
PERSON_CLASS_ID = 1
DEFAULT_CLASSES = ("person", "box", "ball")


class DetectorConfigError(ValueError):
    """A detector configuration that cannot build a network."""


@dataclass(frozen=True)
class DetectorConfig:
    classes: tuple[str, ...] = DEFAULT_CLASSES  # class id i + 1 is classes[i]
    min_size: int = 128  # frames are resized (inside the network) to this short side
    max_size: int = 256  # ... with the long side at most this
    widths: tuple[int, ...] = (16, 32, 64, 96)  # backbone stages at strides 2, 4, 8, 16
    fpn_channels: int = 64
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64)  # one per FPN level (strides 4, 8, 16, 32)
    aspect_ratios: tuple[float, ...] = (1.0, 2.5)  # height / width: objects, persons
    head_channels: int = 256  # the two-layer box head
    score_threshold: float = 0.5  # kept detections score at least this
    nms_iou: float = 0.5
    max_detections: int = 50

    def __post_init__(self) -> None:
        if not self.classes or self.classes[0] != "person":
            raise DetectorConfigError(f"classes {self.classes}: the first class must be person")
        if len(self.anchor_sizes) != len(self.widths):
            raise DetectorConfigError(
                f"anchor_sizes {self.anchor_sizes}: need one per backbone stage "
                f"({len(self.widths)}: FPN levels at strides 4.. plus a pooled level)")
        if not 0.0 <= self.score_threshold < 1.0:
            raise DetectorConfigError(f"score_threshold {self.score_threshold}: must be in [0,1)")

    @property
    def num_classes(self) -> int:
        """Including the background."""
        return len(self.classes) + 1

    @property
    def person_class_id(self) -> int:
        return PERSON_CLASS_ID

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        return flat_from_dict(cls, data, DetectorConfigError)
