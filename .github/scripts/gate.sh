#!/usr/bin/env bash
# Gate what `modelops train --json-out train.json` registered, against one environment.
#
#   gate.sh PROJECT ENVIRONMENT [--no-record]
#
# Validates the candidate; when a rule fails (exit 1) and training registered a baseline sibling,
# validates the baseline too: in an empty environment exactly one of the two can pass (the
# first-model path of docs/promotion.md), and the one that passes is the version to promote.
# --no-record is passed to every `modelops validate` (pull-request jobs: nothing is written to
# the ledger or MLflow).
#
# Writes report.md / verdict.json (candidate), report-baseline.md / verdict-baseline.json
# (baseline, when validated) and gate.json:
#   {"project", "environment", "recorded", "candidate_version", "baseline_version",
#    "version", "role", "exit_code"}
# where version/role name the version that passed (else the candidate) and exit_code is 0 (a
# version passed), 1 (rules failed) or 2 (could not evaluate). The same exit_code and version go
# to $GITHUB_OUTPUT when set, the reports to $GITHUB_STEP_SUMMARY. Always exits 0 once gate.json
# is written, so that the caller can publish the reports before enforcing the verdict; exits 2
# without gate.json when train.json is unusable.
set -euo pipefail

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ] || { [ "$#" -eq 3 ] && [ "$3" != --no-record ]; }; then
  echo "usage: gate.sh PROJECT ENVIRONMENT [--no-record]" >&2
  exit 2
fi
project=$1
environment=$2
record_args=()
recorded=true
if [ "${3-}" = --no-record ]; then
  record_args=(--no-record)
  recorded=false
fi
modelops=${MODELOPS:-.venv/bin/modelops}
version_pattern='^[A-Za-z0-9._-]+$'

candidate=$(jq -r '.candidate_version // empty | tostring' train.json)
baseline=$(jq -r '.baseline_version // empty | tostring' train.json)
if [[ ! "$candidate" =~ $version_pattern ]]; then
  echo "::error::train.json holds no usable candidate_version" >&2
  exit 2
fi
if [ -n "$baseline" ] && [[ ! "$baseline" =~ $version_pattern ]]; then
  echo "::error::train.json holds an unusable baseline_version" >&2
  exit 2
fi

# Runs one validation; prints nothing, returns the exit code of modelops.
validate() {
  local version=$1 report=$2 verdict=$3 code=0
  "$modelops" validate "$project" "$version" --against "$environment" "${record_args[@]}" \
    --report-out "$report" --json-out "$verdict" || code=$?
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$report" ]; then
    cat "$report" >> "$GITHUB_STEP_SUMMARY"
  fi
  echo "modelops validate $project $version --against $environment exited with $code" >&2
  return "$code"
}

version=$candidate
role=candidate
code=0
validate "$candidate" report.md verdict.json || code=$?
if [ "$code" -eq 1 ] && [ -n "$baseline" ]; then
  echo "the candidate failed a rule: validating its baseline sibling v$baseline" >&2
  baseline_code=0
  validate "$baseline" report-baseline.md verdict-baseline.json || baseline_code=$?
  case "$baseline_code" in
    0) code=0; version=$baseline; role=baseline ;;
    1) code=1 ;;
    *) code=2 ;;
  esac
elif [ "$code" -ne 0 ] && [ "$code" -ne 1 ]; then
  code=2
fi

jq -n \
  --arg project "$project" --arg environment "$environment" --argjson recorded "$recorded" \
  --arg candidate "$candidate" --arg baseline "$baseline" --arg version "$version" \
  --arg role "$role" --argjson exit_code "$code" \
  '{project: $project, environment: $environment, recorded: $recorded,
    candidate_version: $candidate, baseline_version: (if $baseline == "" then null else $baseline end),
    version: $version, role: $role, exit_code: $exit_code}' > gate.json
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "exit_code=$code"
    echo "version=$version"
    echo "role=$role"
  } >> "$GITHUB_OUTPUT"
fi
echo "gate of $project against $environment: exit code $code ($role v$version)"
