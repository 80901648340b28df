"""Synthetic AVA-format benchmark: rendered videos whose labels need each AIA interaction.

Modules: `classes` (the 20 labels in five families), `scene` (the scene grammar: who stands
where, doing what, when), `body` (shapes of people and objects at a time), `raster` (NumPy
drawing of a frame), `annotate` (key-frame labels and detector-style boxes), `video` (PyAV
encoding), `dataset` (one dataset directory), `command` (`aia synth`), `figure` (the docs
picture). docs/synthetic.md explains the design.
"""
