#!/usr/bin/env bash
# Which projects a change touches, as a JSON list on stdout, e.g. ["credit_risk","fraud"].
#
#   changed-projects.sh BASE_SHA
#
# A project is a folder under projects/ holding project.yaml. The change is
# `git diff BASE_SHA...HEAD`: what HEAD changed since its merge base with BASE_SHA. A change
# that can affect every project selects all of them: the platform (platform/, the gate's own
# scripts and workflow), its dependencies (pyproject.toml, lock and requirements files, .ci/)
# and feature_repo/; so does a BASE_SHA that is empty or all zeros (a push that created the
# branch: nothing to compare with). A folder
# name outside [A-Za-z0-9_.-] is refused: names end up in job names, paths and artifact names.
# Run from the repository root. Exit 0 with the list; non-zero (and nothing on stdout) on error.
set -euo pipefail

base=${1-}
projects=()
for file in projects/*/project.yaml; do
  [ -f "$file" ] || continue
  name=${file#projects/}
  name=${name%/project.yaml}
  if [[ ! "$name" =~ ^[A-Za-z0-9_.-]+$ ]]; then
    printf 'rejected project folder name: %q\n' "$name" >&2
    echo "::error::project folder names may only use letters, digits, '_', '.' and '-'" >&2
    exit 1
  fi
  projects+=("$name")
done

all=false
declare -A touched=()
if [[ -z "$base" || "$base" =~ ^0+$ ]]; then
  echo "no base commit to compare with: selecting every project" >&2
  all=true
else
  changed=$(git diff --name-only "${base}...HEAD")
  while IFS= read -r path; do
    case "$path" in
      feature_repo/* | platform/* | pyproject.toml | setup.cfg | setup.py) all=true ;;
      .ci/* | requirements/* | requirements*.txt | constraints*.txt | *.lock) all=true ;;
      .github/scripts/* | .github/workflows/model-gate.yml) all=true ;;
      projects/*/*) rest=${path#projects/}; touched["${rest%%/*}"]=1 ;;
    esac
  done <<< "$changed"
fi

selected=()
for name in "${projects[@]}"; do
  if [ "$all" = true ] || [ -n "${touched[$name]:-}" ]; then
    selected+=("$name")
  fi
done

if [ "${#selected[@]}" -eq 0 ]; then
  echo '[]'
else
  printf '%s\n' "${selected[@]}" | jq -R . | jq -cs .
fi
