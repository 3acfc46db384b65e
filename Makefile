# Two commands do all the work, on a fresh machine too:
#   make lab        create .venv if needed, install, and open the book in JupyterLab
#   make test       create .venv if needed, install, and run every test and every notebook (quick mode)
#   make test-fast  the same install, then the tests in tests/ without those marked slow and without notebooks

PYTHON ?= python3
VENV ?= .venv
ifeq ($(OS),Windows_NT)
BIN := $(VENV)/Scripts
else
BIN := $(VENV)/bin
endif
PY := $(BIN)/python
# Which PyTorch to install when the venv has none; CI pins the exact CPU build it tests with.
TORCH_SPEC ?= torch

# Offline machines: a folder of the book's data files beside the checkout serves as the data layer's mirror.
LLMS_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))
export LLMS_DATA_MIRROR

.PHONY: lab test test-fast lint venv clean figures

$(VENV)/.installed: requirements.txt pkg/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -r requirements.txt -e "./pkg[test]"
	@touch $@

venv: $(VENV)/.installed

# Jupyter refuses to start as root (containers, cloud notebooks) unless told that it is on purpose
ifeq ($(OS),Windows_NT)
JUPYTER_ROOT_FLAG :=
else
JUPYTER_ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
endif

lab: venv
	$(BIN)/jupyter lab $(JUPYTER_ROOT_FLAG) README.md

# tiktoken downloads its GPT-2 files on first use; conftest.py gives it a copy of the mirror's ready cache.
test: venv
	$(PY) -m pytest

# end-to-end training and real checkpoints are marked slow (see pytest.ini); `make test` still runs them
test-fast: venv
	$(PY) -m pytest tests -m "not slow"

# concept figures: every figures/draw.py redraws its chapter's SVGs beside the notebook
figures: venv
	@for script in $(wildcard */*/figures/draw.py); do echo "$$script"; $(PY) $$script || exit 1; done

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache
