# Set-up and everyday targets. Each creates .venv when it is missing and is safe to re-run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The torch/torchvision pair the test suite and the committed reports were run with (pyproject.toml accepts
# torch>=2.4,<3). From PyPI on Linux x86_64 it is the CUDA build (with 3.2 GB of nvidia packages and triton).
# CPU-only build, no nvidia packages:  make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Keep the torch you have (e.g. a CUDA build for your driver):  make demo TORCH=  (add
# VENV_FLAGS=--system-site-packages to let a new .venv see the system's torch)
TORCH ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
VENV_FLAGS ?=

.PHONY: demo test bench lint clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)))
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	# 2 arms x 3 seeds at the demo scale on the built-in synthetic data; prints where the report is.
	# Its own store and reports folder: the committed cpu-preset reports/ and a local runs/ stay untouched.
	WANDB_SILENT=true $(BIN)/harness run ablate-pool --preset demo --seeds 3 --workers 2 \
		--store demo/runs --reports demo/reports

test: $(STAMP)
	$(BIN)/ruff check cyclegan harness tests scripts
	WANDB_SILENT=true WANDB_MODE=offline $(BIN)/python -m pytest -q -x -n auto --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/harness bench --preset cpu
	$(BIN)/harness bench --preset paper --size 128 --set model.n_blocks=6 --iters 5 --warmup 1

lint: $(STAMP)
	$(BIN)/ruff check cyclegan harness tests scripts
	$(BIN)/ruff format --check cyclegan harness tests

clean-venv:
	rm -rf $(VENV)
