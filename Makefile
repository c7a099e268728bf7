# Two entry points: `make serve` and `make test`. Both build the virtualenv from nothing when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARTICLES ?= ../shared/data/mind-sample
# The headless browser and its driver that test /docs (Debian's packages; CI runs as root on a fresh machine).
BROWSER := /usr/bin/chromium /usr/bin/chromedriver
# PostgreSQL's server (initdb, pg_ctl) for the store's tests on a real server (Debian's package, any version).
POSTGRES := $(or $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb)),/usr/lib/postgresql/bin/initdb)
# Varnish and its xkey vmod for the tests behind a real cache (Debian's varnish and varnish-modules).
XKEY := $(or $(firstword $(wildcard /usr/lib/*/varnish/vmods/libvmod_xkey.so)),/usr/lib/varnish/vmods/libvmod_xkey.so)
VARNISH := /usr/sbin/varnishd $(XKEY)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# mkdocs-material's banner about a future MkDocs 2 (printed on every build): not ours to act on.
export NO_MKDOCS_2_WARNING := 1

# axe-core, which the browser tests run in the page to check accessibility (npm; a test tool, never served).
AXE := build/axe/node_modules/axe-core/axe.min.js
export AXE_CORE := $(CURDIR)/$(AXE)

.PHONY: serve test install ingest lint types docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# A CPU build of exactly this torch lies on the machines' disk; any other version pulls CUDA (GBs).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(BROWSER):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

$(POSTGRES):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql

$(VARNISH):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq varnish varnish-modules

$(AXE):
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm install --silent --no-audit --no-fund --prefix build/axe axe-core@4.14.1

install: $(BIN)/.installed

ingest: install
	$(BIN)/recommender ingest $(ARTICLES)

serve: ingest
	$(BIN)/recommender serve

lint: install
	$(BIN)/ruff check .

types: install
	$(BIN)/mypy

# Lint, types and the docs first: they take seconds and keep the code and its docs from rotting; then the suite.
test: lint types docs $(BROWSER) $(POSTGRES) $(VARNISH) $(AXE)
	$(BIN)/pytest -q

# The docs site (mkdocs.yml): --strict fails on a broken link, anchor or page. Built offline (no fonts fetched).
docs: install
	$(BIN)/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) data
