# Every target that needs Python builds .venv first: torch 2.13.0 (CPU) before anything else, then hfgen with its
# dev, demo and trackers extras (gradio, playwright, wandb, trackio), pinned by constraints.txt. `make demo` and
# `make test` are each the only command a newcomer types. The browser test also wants Debian's chromium
# (apt install chromium); it skips without.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= outputs/ddpm-digits
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: demo test test-fast lint install clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,demo,trackers]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hfgen train ddpm --output_dir $(DEMO_DIR) --use_ema --overwrite_output_dir
	$(BIN)/hfgen sample $(DEMO_DIR) --scheduler ddpm --num_inference_steps 1000 --num_images 64 \
		--output $(DEMO_DIR)/samples/ddpm-1000steps.png
	$(BIN)/hfgen sample $(DEMO_DIR) --scheduler ddim --num_inference_steps 50 --num_images 64 \
		--output $(DEMO_DIR)/samples/ddim-50steps.png
	@echo "Samples: $(DEMO_DIR)/samples/ddpm-1000steps.png and $(DEMO_DIR)/samples/ddim-50steps.png"

# Two pytest-xdist workers (each test runs on one thread, so two fill both cores), a file at a time so that module
# fixtures train once (tests/conftest.py: pytest_xdist_make_scheduler). `$(BIN)/python -m pytest tests/test_x.py` runs
# one file in one process.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m unit tests

lint: $(STAMP)
	$(BIN)/ruff check hfgen scripts tests model_cards
	$(BIN)/ruff format --check hfgen scripts tests

clean:
	rm -rf $(VENV) outputs build *.egg-info
