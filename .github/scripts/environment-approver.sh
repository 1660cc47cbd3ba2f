#!/usr/bin/env bash
# Who approved this workflow run's deployment to a GitHub Environment.
#
#   environment-approver.sh ENVIRONMENT [APPROVALS_JSON_FILE]
#
# Reads the run's review history, `gh api repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/
# approvals` (needs `actions: read` and GH_TOKEN), or the recorded response in
# APPROVALS_JSON_FILE, and prints two lines: the login of the reviewer who approved ENVIRONMENT
# (matched case-insensitively, as GitHub does) and their approval comment flattened to one line.
#
# Fails closed (exit 1, nothing on stdout) when nobody approved ENVIRONMENT in this run (an
# environment without required reviewers is never "approved"), when different people approved it
# (re-runs approved by several reviewers: start a new run so that one approval decides), or when
# the login is not a GitHub login.
set -euo pipefail

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
  echo "usage: environment-approver.sh ENVIRONMENT [APPROVALS_JSON_FILE]" >&2
  exit 2
fi
environment=$1
if [ "$#" -eq 2 ]; then
  response=$(cat -- "$2")
else
  : "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}" "${GITHUB_RUN_ID:?GITHUB_RUN_ID is not set}"
  response=$(gh api "repos/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/approvals")
fi

approvals=$(jq -c --arg env "$environment" '
  if type != "array" then error("the approvals response is not a list") else . end
  | [ .[]
      | select(.state == "approved")
      | select(any(.environments[]?; (.name // "" | ascii_downcase) == ($env | ascii_downcase)))
      | {login: (.user.login // ""), comment: (.comment // "")} ]' <<< "$response")

logins=$(jq -r '[.[].login] | unique | .[]' <<< "$approvals")
count=$(jq '[.[].login] | unique | length' <<< "$approvals")
if [ "$count" -eq 0 ]; then
  echo "::error::nobody approved environment '$environment' in this run; configure it with" \
       "required reviewers (Settings > Environments > $environment)" >&2
  exit 1
fi
if [ "$count" -gt 1 ]; then
  echo "::error::environment '$environment' was approved by several reviewers in this run" \
       "($(tr '\n' ' ' <<< "$logins")); start a new run so that one approval decides" >&2
  exit 1
fi
login=$logins
if [[ ! "$login" =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,38})$ ]]; then
  echo "::error::the approval of '$environment' names no valid GitHub login" >&2
  exit 1
fi
comment=$(jq -r --arg login "$login" \
  '[.[] | select(.login == $login) | .comment | select(. != "")] | last // ""
   | gsub("[\\r\\n\\t]+"; " ") | .[0:500]' <<< "$approvals")
printf '%s\n%s\n' "$login" "$comment"
