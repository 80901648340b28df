"""Benchmarks and reference proofs, all in one place: `aia bench` (cli.py dispatches
train-memory and serve) and the scripts run as `python bench/NAME.py`. Above every other
package: a benchmark may import model, exporters and service; nothing imports bench."""
