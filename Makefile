# fathom: the two commands a fresh machine needs.
#   make demo   installs everything into .venv and runs the whole flow on a synthetic competition
#   make test   installs everything into .venv and runs the test suite
#   make gpu-check  the CUDA path's tests (pytest -m gpu), then the training-step benchmark of
#               resnet50, densenet121 and efficientnet_b0 at 224 px; CPU-sized parts without a GPU
#   make kaggle-check  the generated predict, train and prior kernels in a Python 3.12
#               environment built like Kaggle's image (.kaggle-venv/, built once: ~5 GB, torch);
#               not part of `make test`
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint install clean-demo gpu-check kaggle-check

install: $(VENV)/.installed

# pip is left to talk (no -q): the first install downloads ~6 GB (torch) and takes ~5 minutes,
# which a silent terminal makes look like a hang
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@echo "make: [1/3] creating the virtual environment $(VENV) (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: [2/3] installing the pinned requirements-dev.txt into $(VENV): torch, timm, ... (~6 GB, about 5 minutes the first time; pip shows each package)"
	$(PY) -m pip install -r requirements-dev.txt
	@echo "make: [3/3] installing fathom itself (pip install -e ., a few seconds)"
	$(PY) -m pip install --no-deps -e .
	touch $@
	@echo "make: installed; $(VENV)/bin/fathom --help lists the commands"

demo: install
	$(VENV)/bin/fathom demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check fathom tests scripts
	$(VENV)/bin/ruff format --check fathom tests scripts

BENCH_MODELS := resnet50 densenet121 efficientnet_b0

gpu-check: install
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(PY) -m pytest -m gpu -q -p no:cacheprovider || exit 1; \
		for m in $(BENCH_MODELS); do \
			$(PY) scripts/bench_train.py --model $$m --img-size 224 --batch 128 || exit 1; \
		done; \
		$(PY) scripts/bench_flow.py --device cuda --frame 640x360 --epochs 2 || exit 1; \
	else \
		echo "gpu-check: no CUDA device on this machine: the gpu tests skip, and the benchmark runs CPU-sized"; \
		$(PY) -m pytest -m gpu -q -p no:cacheprovider || exit 1; \
		$(PY) scripts/bench_train.py --model fathom_cnn --img-size 32 --batch 32 --n-images 96 \
			--source-size 128x96 --epochs 1 --steps 3 --warmup 1 --workers 2 || exit 1; \
		$(PY) scripts/bench_flow.py --size cpu --device cpu --folds 2 --epochs 1 \
			--workdir $$(mktemp -d) || exit 1; \
	fi

KAGGLE_PYTHON ?= $(HOME)/.pyenv/versions/3.12.1/bin/python

kaggle-check: install
	$(PY) scripts/kaggle_check.py --python $(KAGGLE_PYTHON) --venv .kaggle-venv
