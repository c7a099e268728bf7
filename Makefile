# Two entry points: `make serve` and `make test`. Both build the virtualenv from nothing when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARTICLES ?= ../shared/data/mind-sample
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: serve test install ingest clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# A CPU build of exactly this torch lies on the machines' disk; any other version pulls CUDA (GBs).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

ingest: install
	$(BIN)/recommender ingest $(ARTICLES)

serve: ingest
	$(BIN)/recommender serve

test: install
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) data
