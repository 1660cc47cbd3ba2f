#!/usr/bin/env bash
# Move VERSION of PROJECT into ENVIRONMENT through the gate, unless it is already there or
# further along.
#
#   promote-to.sh [--validate-only] PROJECT VERSION ENVIRONMENT
#
# 1. When VERSION holds ENVIRONMENT or an environment after it ($MODELOPS_ENVIRONMENTS, default
#    "dev staging production"), there is nothing to do: holds=true.
# 2. `modelops validate PROJECT VERSION --against ENVIRONMENT` records the verdict (the report goes
#    to $GITHUB_STEP_SUMMARY); a failed (1) or errored (2) gate stops here with its exit code.
# 3. With --validate-only, stop: holds=false (the caller promotes after an approval).
# 4. Otherwise `modelops promote PROJECT VERSION --to ENVIRONMENT --reason "$REASON"`, unless the
#    validation already promoted it (a project with promotion.auto_promote_staging).
#
# holds=true|false goes to $GITHUB_OUTPUT when set. Who holds an environment is asked from the
# ledger: `modelops history PROJECT --env ENV --at <tomorrow>` prints "...: v<holder>".
set -euo pipefail

validate_only=false
if [ "${1-}" = --validate-only ]; then
  validate_only=true
  shift
fi
if [ "$#" -ne 3 ]; then
  echo "usage: promote-to.sh [--validate-only] PROJECT VERSION ENVIRONMENT" >&2
  exit 2
fi
project=$1
version=$2
environment=$3
modelops=${MODELOPS:-.venv/bin/modelops}
read -r -a order <<< "${MODELOPS_ENVIRONMENTS:-dev staging production}"

if [[ ! "$project" =~ ^[A-Za-z0-9_.-]+$ ]] || [[ ! "$version" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "::error::project and version may only use letters, digits, '_', '.' and '-'" >&2
  exit 2
fi

# The environments from ENVIRONMENT on, in promotion order.
later=()
for name in "${order[@]}"; do
  if [ "$name" = "$environment" ] || [ "${#later[@]}" -gt 0 ]; then
    later+=("$name")
  fi
done
if [ "${#later[@]}" -eq 0 ]; then
  echo "::error::unknown environment '$environment' (configured: ${order[*]})" >&2
  exit 2
fi

output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "holds=$1" >> "$GITHUB_OUTPUT"; fi
}

# Exit 0 when VERSION holds $1 now, 1 when not; stops the script when the ledger cannot be read.
holds() {
  local answer tomorrow
  tomorrow=$(date -u -d '+1 day' '+%Y-%m-%dT%H:%M:%S')
  # `exit`, not `return`: set -e does not apply inside a function called from `if`.
  answer=$("$modelops" history "$project" --env "$1" --at "$tomorrow") || {
    echo "::error::could not read who holds $1 from the ledger" >&2
    exit 2
  }
  [[ "$answer" == *": v$version" ]]
}

for name in "${later[@]}"; do
  if holds "$name"; then
    echo "$project v$version already holds $name: nothing to do for $environment"
    output true
    exit 0
  fi
done

code=0
"$modelops" validate "$project" "$version" --against "$environment" \
  --report-out "report-$environment.md" --json-out "verdict-$environment.json" || code=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "report-$environment.md" ]; then
  cat "report-$environment.md" >> "$GITHUB_STEP_SUMMARY"
fi
if [ "$code" -ne 0 ]; then
  echo "::error::$project v$version did not pass the gate against $environment (exit code $code)"
  exit "$code"
fi
if [ "$validate_only" = true ]; then
  output false
  exit 0
fi
if holds "$environment"; then
  echo "$project v$version was promoted to $environment by its passing verdict (project policy)"
else
  "$modelops" promote "$project" "$version" --to "$environment" \
    --reason "${REASON:-passed the gate against $environment}"
fi
output true
