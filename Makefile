# Set-up and everyday targets. Each creates .venv when it is missing and is safe to re-run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision pinned to the pair that installs from this machine's disk
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	# 2 arms x 3 seeds at the demo scale on the built-in synthetic data; prints where the report is.
	# Its own store and reports folder: the committed cpu-preset reports/ and a local runs/ stay untouched.
	WANDB_SILENT=true $(BIN)/harness run ablate-pool --preset demo --seeds 3 --workers 2 \
		--store demo/runs --reports demo/reports

test: $(STAMP)
	$(BIN)/ruff check cyclegan harness tests scripts
	WANDB_SILENT=true WANDB_MODE=offline $(BIN)/python -m pytest -q -x --durations=15

bench: $(STAMP)
	$(BIN)/harness bench --preset cpu
	$(BIN)/harness bench --preset paper --size 128 --set model.n_blocks=6 --iters 5 --warmup 1

lint: $(STAMP)
	$(BIN)/ruff check cyclegan harness tests scripts
	$(BIN)/ruff format --check cyclegan harness tests

clean-venv:
	rm -rf $(VENV)
