#!/usr/bin/env bash
# Builds and pushes our three images with one tag (make images calls this with the git sha):
#   REGISTRY/textclf-components:TAG  components/Dockerfile          (CPU pipeline steps)
#   REGISTRY/textclf-trainer:TAG     components/Dockerfile.trainer  (CUDA train step)
#   REGISTRY/textclf-server:TAG      serving/Dockerfile             (KServe predictor)
# The names are components/images.py's; compile the pipeline with the same
# TEXTCLF_IMAGE_REGISTRY / TEXTCLF_IMAGE_TAG so its steps run these exact images.
#
# Usage: infra/build-images.sh REGISTRY TAG        e.g. us-central1-docker.pkg.dev/PROJECT/textclf 1a2b3c4d5e6f
#        PUSH=0 infra/build-images.sh ...          build only
# A tag names a commit, so a tree with uncommitted changes is refused (ALLOW_DIRTY=1 overrides).
set -euo pipefail

REGISTRY=${1:?usage: $0 REGISTRY TAG}
TAG=${2:?usage: $0 REGISTRY TAG}
PUSH=${PUSH:-1}
cd "$(dirname "$0")/.."

if [[ "${ALLOW_DIRTY:-0}" != 1 ]] && [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  echo "error: uncommitted changes; the image tag ${TAG} would not describe what is built (ALLOW_DIRTY=1 to build anyway)" >&2
  exit 1
fi

images=(
  "components components/Dockerfile"
  "trainer components/Dockerfile.trainer"
  "server serving/Dockerfile"
)
for entry in "${images[@]}"; do
  read -r name dockerfile <<<"${entry}"
  if [[ ! -f "${dockerfile}" ]]; then
    echo "error: ${dockerfile} is missing" >&2
    exit 1
  fi
done

for entry in "${images[@]}"; do
  read -r name dockerfile <<<"${entry}"
  ref="${REGISTRY}/textclf-${name}:${TAG}"
  echo "== ${ref} (${dockerfile})"
  # GKE nodes are amd64, whatever machine builds the image.
  docker build --platform linux/amd64 -f "${dockerfile}" -t "${ref}" .
  if [[ "${PUSH}" == 1 ]]; then
    docker push "${ref}"
  fi
done

echo
echo "export TEXTCLF_IMAGE_REGISTRY=${REGISTRY} TEXTCLF_IMAGE_TAG=${TAG}  # then make compile"
