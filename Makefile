# fedem: every target sets itself up. A fresh clone needs nothing installed by hand.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test bench lint clean

venv: $(STAMP)

# torch goes in first and pinned: pip takes the local CPU wheel; unpinned it may pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The main job on the embedded default: pretrain the small Seshu, then one LoRA relay hop.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/fedem pretrain --config pipelines/pretrain.yaml --output runs/demo/pretrain
	$(BIN)/fedem finetune --config pipelines/finetune.yaml --base runs/demo/pretrain --output runs/demo/adapter
	$(BIN)/fedem generate runs/demo/pretrain --adapter runs/demo/adapter --prompt "జనవరి" --max-new-tokens 80

test: $(STAMP)
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
