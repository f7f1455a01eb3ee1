# weige — two commands: `make run` (set up, load the demo district, serve) and `make test`.
# Re-running either is safe and fast: each step is skipped when already done.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := gdal-bin libsqlite3-mod-spatialite
# The browser tests' headless Chromium (driven by Playwright) and CJK fonts for the
# Chinese labels in their screenshots; installed by `make test` only.
TEST_APT_PACKAGES := chromium fonts-noto-cjk
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup system-packages migrate demo lint bench postgis

run: setup migrate demo
	$(PY) manage.py runserver $(HOST):$(PORT)

test: setup
	@$(MAKE) --no-print-directory system-packages APT_PACKAGES="$(TEST_APT_PACKAGES)"
	$(PY) -m pytest

setup: system-packages $(STAMP)

# Native libraries GeoDjango needs (Debian/Ubuntu; elsewhere install GDAL, GEOS and
# SpatiaLite with the system's package manager).
system-packages:
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "Installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $$missing; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "weige needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

migrate: setup
	$(PY) manage.py migrate -v0

demo: migrate
	$(PY) manage.py load_demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# A local PostgreSQL/PostGIS for `DATABASE_URL=$$(make -s postgis) make test`.
postgis:
	@bash .ci/postgis.sh

bench: setup
	$(PY) bench/run.py
