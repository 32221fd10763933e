# fedem: every target sets itself up. A fresh clone needs nothing installed by hand.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv browser demo test bench lint clean

venv: $(STAMP)

# torch goes in first and pinned: pip takes the local CPU wheel; unpinned it may pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default: the whole federation simulated (pipelines/simulate.yaml):
# claims, relays, dropouts, the nightly gate and merge, CPT, and the centralized reference line.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/fedem simulate --config pipelines/simulate.yaml --output runs/demo --progress

# The report test opens report.html in Debian's headless Chromium (installed here when missing).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install Debian's chromium; tests/sim/test_report.py's browser checks will skip"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

# ruff on the code; the import layers (import-linter, contracts in pyproject.toml);
# actionlint (jactionlint, offline), zizmor and the workflow schema on .github/.
lint: $(STAMP)
	$(BIN)/ruff check fedem tests benchmarks scripts
	$(BIN)/ruff format --check fedem tests benchmarks scripts
	$(BIN)/lint-imports --no-cache
	$(BIN)/jactionlint --no-hints .github/workflows/*.yml
	$(BIN)/zizmor --offline -q .github/workflows/
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

clean:
	rm -rf $(VENV) runs .pytest_cache
