# Two commands do all the work, on a fresh machine too:
#   make lab    create .venv if needed, install, and open the book in JupyterLab
#   make test   create .venv if needed, install, and run every test and every notebook (quick mode)

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

.PHONY: lab test lint venv clean

$(VENV)/.installed: requirements.txt pkg/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -r requirements.txt -e "./pkg[test]"
	@touch $@

venv: $(VENV)/.installed

lab: venv
	$(BIN)/jupyter lab README.md

# tiktoken downloads its GPT-2 files on first use; a mirror's ready tiktoken cache makes that work offline.
test: venv
	@if [ -z "$$TIKTOKEN_CACHE_DIR" ] && [ -d "$(LLMS_DATA_MIRROR)/tiktoken_cache" ]; then \
	  mkdir -p .cache/tiktoken && cp -r "$(LLMS_DATA_MIRROR)/tiktoken_cache/." .cache/tiktoken/; fi
	TIKTOKEN_CACHE_DIR="$${TIKTOKEN_CACHE_DIR:-$(abspath .cache/tiktoken)}" $(PY) -m pytest

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache
