# mobilesam-export — everything runs inside .venv (created on first use).
#   make export FORMAT=onnx|coreml|tflite|openvino|all QUANT=... WEIGHTS=path|random OUT=exports
#   make parity FORMAT=... QUANT=...     make bench FORMAT=... QUANT=...     make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FORMAT ?= onnx
QUANT  ?=
WEIGHTS ?=
OUT    ?= exports
ARGS   ?=

DEFAULT_QUANT_onnx     := fp32
DEFAULT_QUANT_openvino := fp32
DEFAULT_QUANT_coreml   := fp16
DEFAULT_QUANT_tflite   := fp32
Q := $(if $(QUANT),$(QUANT),$(DEFAULT_QUANT_$(FORMAT)))
comma  := ,
# one install stamp per extras set, e.g. .venv/.installed-onnx-bench
STAMP  := $(VENV)/.installed-$(if $(filter all,$(FORMAT)),all,$(FORMAT)-bench)

.PHONY: help venv export parity bench bench-all test lint clean

help:
	@sed -n '1,4p' Makefile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch==2.13.0 comes from the local wheel cache (pinned in pyproject); no timm/torchvision.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(subst -,$(comma),$*)]"
	@touch $@

$(VENV)/.installed-upstream: | $(BIN)/python
	$(BIN)/pip install -q --no-deps mobilesam-mirror
	@touch $@

venv: $(STAMP)

export: $(STAMP)
	$(BIN)/mobilesam-export export --format $(FORMAT) $(if $(QUANT),--quant $(QUANT)) \
	  $(if $(WEIGHTS),--weights $(WEIGHTS)) --out $(OUT) $(ARGS)

parity: $(STAMP)
	$(BIN)/mobilesam-export parity $(OUT)/$(FORMAT)-$(Q) $(if $(WEIGHTS),--weights $(WEIGHTS)) $(ARGS)

bench: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks $(OUT)/$(FORMAT)-$(Q) $(ARGS)

bench-all: $(VENV)/.installed-all
	$(BIN)/python -m benchmarks --export-all --weights $(if $(WEIGHTS),$(WEIGHTS),random) \
	  --out benchmarks/results/$$(hostname)-$$(date +%Y%m%d) $(ARGS)

test: $(VENV)/.installed-all $(VENV)/.installed-upstream
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-all
	$(BIN)/ruff check .

clean:
	rm -rf $(OUT) .pytest_cache
