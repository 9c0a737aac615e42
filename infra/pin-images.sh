#!/usr/bin/env bash
# Resolves every image of infra/base-images.lock to the digest its tag has now, records it there, and
# writes TAG@DIGEST into the manifests that run the image (manifests/**/*.yaml). Needs a registry:
# `docker buildx imagetools inspect` (Docker 23+) or `crane digest`. Review the diff, then commit it.
#
# Usage: infra/pin-images.sh              (make pin-images)
# A digest already recorded is checked against the registry and kept; a tag whose digest changed is
# reported and left alone (REPIN=1 takes the new digest: a re-pushed tag is a supply-chain event).
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=infra/base-images.lock

resolve() {
  if command -v crane >/dev/null; then
    crane digest "$1"
  else
    docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'
  fi
}

changed=0
tmp=$(mktemp)
while IFS= read -r line; do
  if [[ -z "${line}" || "${line}" == \#* ]]; then
    echo "${line}" >>"${tmp}"
    continue
  fi
  read -r tag recorded <<<"${line}"
  digest=$(resolve "${tag}")
  if [[ -n "${recorded:-}" && "${recorded}" != "${digest}" && "${REPIN:-0}" != 1 ]]; then
    echo "warning: ${tag} now resolves to ${digest}, the lock says ${recorded}: kept (REPIN=1 to take it)" >&2
    digest=${recorded}
    changed=1
  fi
  echo "${tag} ${digest}" >>"${tmp}"
  echo "${tag} -> ${digest}"
  # Manifests: the bare tag, or the tag with an older digest, becomes tag@digest.
  grep -rlF "image: ${tag}" manifests | while IFS= read -r file; do
    sed -i -E "s#image: ${tag}(@sha256:[0-9a-f]{64})?\$#image: ${tag}@${digest}#" "${file}"
  done
done <"${LOCK}"
mv "${tmp}" "${LOCK}"
exit "${changed}"
