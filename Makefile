# One command to start a node, one to run the whole test suite; both build .venv as needed.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test lint bench messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/aidmesh run $(ARGS)

test: $(VENV)/.test-installed
	bash .ci/chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(VENV)/.test-installed
	for b in verify api sync match edge web scale; do $(BIN)/python -m bench.$$b $(BENCH_ARGS) || exit 1; done

# After changing a page's words: refresh the template and each language's catalog, then
# translate the new entries (tests/test_web_catalogs.py fails until every one is done).
messages: $(VENV)/.test-installed
	$(BIN)/pybabel extract -F node/web/babel.cfg --no-location --omit-header -k _ -k gettext \
		-k ngettext:1,2 -o node/web/locale/messages.pot node/web
	$(BIN)/pybabel update --no-fuzzy-matching -i node/web/locale/messages.pot \
		-d node/web/locale
