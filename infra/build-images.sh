#!/usr/bin/env bash
# Builds and pushes our four images with one tag (make images calls this with the git sha):
#   REGISTRY/textclf-components:TAG  components/Dockerfile               (CPU pipeline steps, drift CronJob)
#   REGISTRY/textclf-trainer:TAG     components/Dockerfile.trainer       (CUDA train step)
#   REGISTRY/textclf-server:TAG      serving/Dockerfile                  (KServe predictor, CPU torch)
#   REGISTRY/textclf-server-gpu:TAG  serving/Dockerfile VARIANT=gpu      (KServe predictor, CUDA torch)
# Each builds FROM the Python base pinned by digest in infra/base-images.lock (`make pin-images`
# records it), installs only hash-checked packages, and is pushed and then named by its digest:
# build/images.env gets TEXTCLF_<NAME>_IMAGE=REGISTRY/textclf-<name>@sha256:... for each, which
# textclf/images.py reads, so `set -a; . build/images.env; set +a; make compile` pins the pipeline's
# steps and the deploy step's predictor to exactly these images.
#
# Usage: infra/build-images.sh REGISTRY TAG        e.g. us-central1-docker.pkg.dev/PROJECT/textclf 1a2b3c4d5e6f
#        PUSH=0 infra/build-images.sh ...          build only (no digests: they exist once pushed)
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

base=$(awk '$1 == "python:3.11.11-slim-bookworm" {print $1 "@" $2}' infra/base-images.lock)
if [[ "${base}" != *@sha256:* ]]; then
  echo "error: infra/base-images.lock has no digest for python:3.11.11-slim-bookworm: run make pin-images (needs a registry) and commit the lock" >&2
  exit 1
fi

images=(
  "components components/Dockerfile cpu"
  "trainer components/Dockerfile.trainer cpu"
  "server serving/Dockerfile cpu"
  "server-gpu serving/Dockerfile gpu"
)
for entry in "${images[@]}"; do
  read -r name dockerfile _ <<<"${entry}"
  if [[ ! -f "${dockerfile}" ]]; then
    echo "error: ${dockerfile} is missing" >&2
    exit 1
  fi
done

mkdir -p build
env_file=build/images.env
: >"${env_file}"
for entry in "${images[@]}"; do
  read -r name dockerfile variant <<<"${entry}"
  ref="${REGISTRY}/textclf-${name}:${TAG}"
  echo "== ${ref} (${dockerfile}, ${variant}, FROM ${base})"
  # GKE nodes are amd64, whatever machine builds the image.
  docker build --platform linux/amd64 -f "${dockerfile}" --build-arg "PYTHON_IMAGE=${base}" \
    --build-arg "VARIANT=${variant}" -t "${ref}" .
  if [[ "${PUSH}" == 1 ]]; then
    docker push "${ref}"
    # The registry's digest of what was just pushed: REGISTRY/textclf-NAME@sha256:...
    pinned=$(docker inspect --format '{{index .RepoDigests 0}}' "${ref}")
    variable="TEXTCLF_$(tr 'a-z-' 'A-Z_' <<<"${name}")_IMAGE"
    echo "${variable}=${pinned}" >>"${env_file}"
    echo "   ${pinned}"
  fi
done

echo
if [[ "${PUSH}" == 1 ]]; then
  echo "images pinned by digest in ${env_file}: set -a; . ${env_file}; set +a; make compile"
else
  echo "export TEXTCLF_IMAGE_REGISTRY=${REGISTRY} TEXTCLF_IMAGE_TAG=${TAG}  # then make compile (by tag: not pushed)"
fi
