"""A small person + object detector (torchvision Faster R-CNN, trained from scratch) for the
key frames of videos that come without boxes (issue 7; docs/detector.md)."""
