#!/usr/bin/env bash
# Fail unless every named environment variable is set and not empty. An empty secret would make
# modelops fall back to its 127.0.0.1 defaults; refuse that instead. Never prints a value.
#
#   require-env.sh NAME...
set -uo pipefail

missing=0
for name in "$@"; do
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "::error::not a variable name: $name"
    missing=1
  elif [ -z "${!name:-}" ]; then
    echo "::error::secret $name is not available to this run (environment secrets are given only" \
         "to jobs on main)"
    missing=1
  fi
done
exit "$missing"
