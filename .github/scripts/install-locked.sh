#!/usr/bin/env bash
# Install modelops into .venv from the hashed lock, the way every workflow that runs modelops
# does (the ones holding the ledger key and registry credentials above all):
#
#   install-locked.sh            (from the repository root)
#
# Every dependency, the build backend included, comes from .ci/requirements.lock: pinned, checked
# against its SHA-256 (pip's hash-checking mode), wheels only (no package's build code runs) and
# nothing resolved beyond the lock. modelops itself is then built from the checkout with that
# backend, without build isolation (which would fetch setuptools unhashed) and without
# dependencies. A package missing from the lock, a changed file or a dependency conflict fails
# the install. Regenerate the lock with `make lock` after changing pyproject.toml.
set -euo pipefail

lock=.ci/requirements.lock
python -m venv .venv
.venv/bin/python -m pip install --quiet --require-hashes --no-deps --only-binary :all: -r "$lock"
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
.venv/bin/python -m pip check
