#!/usr/bin/env bash
# Clone the GitOps repository over SSH with a deploy key, for `modelops deploy --push`.
#
#   gitops-clone.sh DIRECTORY
#
# Reads:
#   GITOPS_REPOSITORY   SSH URL of the GitOps repository (git@github.com:acme/gitops.git or
#                       ssh://...; file:// for tests)
#   GITOPS_DEPLOY_KEY   private half of a deploy key with write access to that repository only
#   GITOPS_KNOWN_HOSTS  optional known_hosts lines; default: github.com's published Ed25519 key
#                       (https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/githubs-ssh-key-fingerprints)
#   RUNNER_TEMP         where the key and known_hosts files go (mode 600)
#
# The clone's own git config (core.sshCommand) carries the key, so later pushes from DIRECTORY
# use it and nothing is exported to other steps. Strict host key checking: an unknown host key
# fails the clone. The key is never printed; remove "$RUNNER_TEMP/gitops_deploy_key" when done.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: gitops-clone.sh DIRECTORY" >&2
  exit 2
fi
directory=$1
: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"

if [ -z "${GITOPS_REPOSITORY:-}" ]; then
  echo "::error::variable GITOPS_REPOSITORY (the GitOps repository's SSH URL) is not set" >&2
  exit 1
fi
if [[ ! "$GITOPS_REPOSITORY" =~ ^(git@[A-Za-z0-9.-]+:|ssh://|file:///)[A-Za-z0-9@._:/~+-]+$ ]]; then
  echo "::error::GITOPS_REPOSITORY must be an SSH URL (git@host:owner/repo.git or ssh://...)" >&2
  exit 1
fi
if [ -z "${GITOPS_DEPLOY_KEY:-}" ]; then
  echo "::error::secret GITOPS_DEPLOY_KEY is not available to this run (environment secrets are" \
       "given only to jobs on main)" >&2
  exit 1
fi

key="$RUNNER_TEMP/gitops_deploy_key"
known_hosts="$RUNNER_TEMP/gitops_known_hosts"
(
  umask 077
  printf '%s\n' "$GITOPS_DEPLOY_KEY" > "$key"
  if [ -n "${GITOPS_KNOWN_HOSTS:-}" ]; then
    printf '%s\n' "$GITOPS_KNOWN_HOSTS" > "$known_hosts"
  else
    echo "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" \
      > "$known_hosts"
  fi
)

ssh_command="ssh -i '$key' -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes"
ssh_command+=" -o UserKnownHostsFile='$known_hosts'"

GIT_SSH_COMMAND="$ssh_command" git clone --quiet -- "$GITOPS_REPOSITORY" "$directory"
git -C "$directory" config --local core.sshCommand "$ssh_command"
echo "cloned the GitOps repository into $directory"
