# Everything bootstraps .venv first; it is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tools whose pins clash with the platform's (checkov downgrades packaging below pytest's need).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: demo test unit integration lint bench clean lock

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): Makefile
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet 'checkov==3.3.30'
	touch $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/modelops demo

# Two workers, one test file each at a time (module-scoped fixtures train once per file).
test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/unit tests/integration projects

unit: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/unit projects

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -m integration

lint: $(STAMP)
	$(BIN)/ruff check platform tests projects feature_repo
	$(BIN)/ruff format --check platform tests projects feature_repo
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/zizmor --min-severity medium .github/workflows
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# The hashed lock the workflows install from (.github/scripts/install-locked.sh): the runtime
# dependencies and the build backend, as wheels for the runners' Python and platform. Run it after
# changing pyproject.toml; tests/unit/test_workflows.py fails while the lock is out of date.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml .ci/build-requirements.in --generate-hashes \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --only-binary :all: \
		--custom-compile-command "make lock" --output-file .ci/requirements.lock

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks -s -p no:cacheprovider

clean:
	rm -rf .modelops feature_repo/data .pytest_cache .venv-tools
