# mobilesam-export — everything runs inside .venv (created on first use).
#   make export FORMAT=onnx|coreml|tflite|openvino|web|all QUANT=... WEIGHTS=path|random OUT=exports
#   make parity FORMAT=... QUANT=...     make bench FORMAT=... QUANT=...     make test
# Paths may contain spaces (OUT="my exports"); FORMAT/QUANT are checked before anything installs.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
FORMAT  ?= onnx
QUANT   ?=
WEIGHTS ?=
OUT     ?= exports
ARGS    ?=
comma   := ,
FORMATS := $(PYTHON) mobilesam_export/formats.py
PIP     := $(BIN)/pip install -q -c constraints.txt
# one install stamp per extras set, e.g. .venv/.installed-onnx-bench
STAMP   := $(VENV)/.installed-$(if $(filter all,$(FORMAT)),all,$(FORMAT)-bench)

.PHONY: help check-args venv export parity bench bench-all test lint clean

help:
	@sed -n '1,4p' Makefile

check-args:
	@$(FORMATS) check '$(FORMAT)' '$(QUANT)'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The exporter installs the runtime (./runtimes) as a dependency; it is then made editable.
# torch==2.13.0 comes from the local wheel cache (pinned); no timm/torchvision.
$(VENV)/.installed-%: pyproject.toml setup.py runtimes/pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[$(subst -,$(comma),$*)]"
	$(PIP) --no-deps -e ./runtimes
	@touch $@

# The runtime alone (what an edge device installs): numpy, Pillow, one runtime library.
$(VENV)/.runtime-%: runtimes/pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e "./runtimes[$*,plot]"
	@touch $@

venv: check-args $(STAMP)

export: check-args $(STAMP)
	$(BIN)/mobilesam-export export --format '$(FORMAT)' $(if $(QUANT),--quant '$(QUANT)') \
	  $(if $(WEIGHTS),--weights "$(WEIGHTS)") --out "$(OUT)" $(ARGS)

parity: check-args $(STAMP)
	$(BIN)/mobilesam-export parity "$(OUT)/$(FORMAT)-$$($(FORMATS) quant '$(FORMAT)' '$(QUANT)')" \
	  $(if $(WEIGHTS),--weights "$(WEIGHTS)") $(ARGS)

# Needs only the runtime and the bundle's library, as on a device: mobilesam-bench.
# web: in headless Chromium beside Python onnxruntime (benchmarks/web.py).
bench: check-args
ifeq ($(FORMAT),web)
	@$(MAKE) --no-print-directory "$(STAMP)"
	$(BIN)/python -m benchmarks.web "$(OUT)/web-$$($(FORMATS) quant web '$(QUANT)')" \
	  --out "benchmarks/results/latest" $(ARGS)
else
	@$(MAKE) --no-print-directory "$(VENV)/.runtime-$(FORMAT)"
	$(BIN)/mobilesam-bench "$(OUT)/$(FORMAT)-$$($(FORMATS) quant '$(FORMAT)' '$(QUANT)')" \
	  --out "benchmarks/results/latest" $(ARGS)
endif

# Every format/precision that runs here, the eager PyTorch baseline beside them, one report.
bench-all: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks --export-all --weights "$(if $(WEIGHTS),$(WEIGHTS),random)" \
	  --out "benchmarks/results/$$(hostname)-$$(date +%Y%m%d)" $(ARGS)

test: $(VENV)/.installed-all
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .

# Removes only bundles this tool made (OUT/<format>-<precision>/ with its manifest) and our
# leftover temp folders; never OUT itself unless it is then empty.
clean:
	@$(FORMATS) clean "$(OUT)"
	rm -rf .pytest_cache
