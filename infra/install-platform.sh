#!/usr/bin/env bash
# Installs, on the cluster kubectl points at, with pinned versions:
#   cert-manager -> Knative Serving + Istio (net-istio) -> KServe in Serverless mode
#   -> Kubeflow Pipelines standalone (default-deny ingress) -> Kubeflow Trainer (multi-node training)
#   -> Katib (the tune pipeline's trials) -> our namespace (Pod Security restricted, default-deny
#   NetworkPolicies), service accounts and RBAC -> JWT authentication and authorization at the
#   Istio gateways -> a small Prometheus that the canary analysis reads.
# KServe's canary rollout works on Knative revisions, so KServe must run in Serverless (Knative)
# mode: RawDeployment/Standard mode ignores canaryTrafficPercent.
#
# Usage: JWT_ISSUER=... JWT_JWKS_URI=... JWT_AUDIENCE=... PUBLIC_HOST=... infra/install-platform.sh PROJECT_ID
#   JWT_*: the identity provider whose tokens outside callers bring (e.g. JWT_ISSUER=https://accounts.google.com
#   JWT_JWKS_URI=https://www.googleapis.com/oauth2/v3/certs JWT_AUDIENCE=<your OAuth client id>);
#   PUBLIC_HOST: the host name outside callers use (DNS pointing at the ingress gateway's address).
#   None of them is a secret. The cluster's own token issuer is read from the cluster.
# Re-running is safe: every step is `kubectl apply` or an idempotent patch.
set -euo pipefail

# Versions move together: KServe and KFP match the SDKs pinned in requirements.lock
# (kserve 0.21.0, kfp 2.17.0); Knative/Istio and cert-manager are releases KServe supports.
# Check KServe's release notes for the Knative range before changing any of them.
CERT_MANAGER_VERSION=v1.17.2
KNATIVE_VERSION=knative-v1.18.0
KSERVE_VERSION=v0.21.0
KFP_VERSION=2.17.0
# Kubeflow Trainer: the release whose TrainJob API the kubeflow SDK in requirements.lock speaks
# (kubeflow 0.5.0 -> kubeflow-trainer-api 2.3.x); needs Kubernetes >= 1.31. It brings JobSet v0.12.0.
TRAINER_VERSION=v2.3.0
# Katib: the release whose Experiment API the tune step writes and the tests check it against
# (tests/fixtures/katib: kubeflow-katib-api 0.19.0, which the kubeflow SDK installs).
KATIB_VERSION=v0.19.0

PROJECT_ID=${1:?usage: $0 PROJECT_ID}
: "${JWT_ISSUER:?set JWT_ISSUER, the issuer of the JWTs outside callers bring (see the usage at the top)}"
: "${JWT_JWKS_URI:?set JWT_JWKS_URI, where that issuer publishes its signing keys}"
: "${JWT_AUDIENCE:?set JWT_AUDIENCE, the audience the callers tokens carry}"
: "${PUBLIC_HOST:?set PUBLIC_HOST, the host name outside callers use}"
KFP_NAMESPACE=kubeflow
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
wait_deployments() { kubectl wait --for=condition=Available --timeout=600s deployment --all -n "$1"; }

step "cert-manager ${CERT_MANAGER_VERSION} (KServe's webhooks need its certificates)"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
wait_deployments cert-manager

step "Knative Serving ${KNATIVE_VERSION} with Istio as its network layer"
kubectl apply -f "https://github.com/knative/serving/releases/download/${KNATIVE_VERSION}/serving-crds.yaml"
kubectl apply -f "https://github.com/knative/serving/releases/download/${KNATIVE_VERSION}/serving-core.yaml"
kubectl apply -l knative.dev/crd-install=true -f "https://github.com/knative/net-istio/releases/download/${KNATIVE_VERSION}/istio.yaml"
kubectl apply -f "https://github.com/knative/net-istio/releases/download/${KNATIVE_VERSION}/istio.yaml"
kubectl apply -f "https://github.com/knative/net-istio/releases/download/${KNATIVE_VERSION}/net-istio.yaml"
# nodeSelector and tolerations in an InferenceService (manifests/overlays/gpu) reach the pods only
# with these Knative feature flags on; the predictor's pod securityContext (seccomp, non-root) needs
# podspec-securitycontext, and secure-pod-defaults hardens Knative's own queue-proxy container, so
# that the pods pass Pod Security `restricted` (manifests/setup/namespace.yaml).
kubectl patch configmap/config-features -n knative-serving --type merge -p \
  '{"data":{"kubernetes.podspec-nodeselector":"enabled","kubernetes.podspec-tolerations":"enabled","kubernetes.podspec-affinity":"enabled","kubernetes.podspec-securitycontext":"enabled","secure-pod-defaults":"enabled"}}'
wait_deployments knative-serving
wait_deployments istio-system

step "KServe ${KSERVE_VERSION}, Serverless mode by default"
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/${KSERVE_VERSION}/kserve.yaml"
wait_deployments kserve
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/${KSERVE_VERSION}/kserve-cluster-resources.yaml"
kubectl patch configmap/inferenceservice-config -n kserve --type merge -p \
  '{"data":{"deploy":"{\"defaultDeploymentMode\": \"Serverless\"}"}}'
# KServe injects its storage initializer without a securityContext, and Pod Security `restricted`
# (manifests/setup/namespace.yaml) refuses such a container: harden KServe's default storage
# container (the one for gs:// URIs) once, for every predictor and the monitor's copy alike.
kubectl patch clusterstoragecontainer default --type merge -p \
  '{"spec":{"container":{"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}}}}}'

step "Kubeflow Pipelines ${KFP_VERSION} (standalone)"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
kubectl wait --for=condition=established --timeout=120s crd --all
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
wait_deployments "${KFP_NAMESPACE}"
# Every pipeline step runs as pipeline-runner: Workload Identity gives it textclf-pipelines@,
# which may write the bucket (infra/iam.tf).
kubectl annotate serviceaccount pipeline-runner -n "${KFP_NAMESPACE}" --overwrite \
  "iam.gke.io/gcp-service-account=textclf-pipelines@${PROJECT_ID}.iam.gserviceaccount.com"
# Only KFP's own pods, the drift CronJob and the control plane may reach the pipeline namespace.
kubectl apply -k manifests/kubeflow-network

step "Kubeflow Trainer ${TRAINER_VERSION}: controller, JobSet, then the torch-distributed runtime"
# The train step submits a TrainJob when num_nodes > 1; with num_nodes = 1 it trains in its own pod
# and Trainer is not used (a cluster without it still runs the pipeline).
kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=${TRAINER_VERSION}"
wait_deployments kubeflow-system
kubectl wait --for=condition=established --timeout=120s crd/clustertrainingruntimes.trainer.kubeflow.org crd/trainjobs.trainer.kubeflow.org
kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=${TRAINER_VERSION}"
# KFP's runner may create and follow TrainJobs (manifests/trainer).
kubectl apply -k manifests/trainer

step "Katib ${KATIB_VERSION} (standalone, in ${KFP_NAMESPACE}): the tune pipeline's Experiments, trials as TrainJobs"
# Only `python -m pipelines compile --tune` for Kubeflow needs it; its webhooks are reachable from the
# control plane through manifests/kubeflow-network (allow-control-plane-katib-webhooks).
kubectl apply --server-side -k "github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=${KATIB_VERSION}"
wait_deployments "${KFP_NAMESPACE}"
kubectl wait --for=condition=established --timeout=120s crd/experiments.kubeflow.org crd/trials.kubeflow.org
# KFP's runner may create, follow and delete the Experiments (manifests/katib).
kubectl apply -k manifests/katib

step "textclf namespace (Pod Security restricted), service accounts (Workload Identity), deployer RBAC, NetworkPolicies"
kubectl kustomize manifests/setup | sed "s/PROJECT_ID/${PROJECT_ID}/g" | kubectl apply -f -

step "JWT authentication, authorization and rate limits at the Istio gateways (manifests/auth)"
# The cluster's service account token issuer and its keys, from the API server's OIDC discovery document.
discovery=$(kubectl get --raw /.well-known/openid-configuration)
CLUSTER_ISSUER=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])' <<<"${discovery}")
CLUSTER_JWKS_URI=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["jwks_uri"])' <<<"${discovery}")
# CLUSTER_* first: JWT_ISSUER is not a prefix of them, but the longer names must go before shorter ones.
kubectl kustomize manifests/auth | sed \
  -e "s#CLUSTER_JWKS_URI#${CLUSTER_JWKS_URI}#g" -e "s#CLUSTER_ISSUER#${CLUSTER_ISSUER}#g" \
  -e "s#JWT_JWKS_URI#${JWT_JWKS_URI}#g" -e "s#JWT_ISSUER#${JWT_ISSUER}#g" -e "s#JWT_AUDIENCE#${JWT_AUDIENCE}#g" \
  -e "s#PUBLIC_HOST#${PUBLIC_HOST}#g" | kubectl apply -f -

step "Prometheus for the canary analysis (manifests/prometheus)"
kubectl apply -k manifests/prometheus
wait_deployments monitoring

step "done"
kubectl get pods -n kserve
kubectl get pods -n "${KFP_NAMESPACE}"
kubectl get clustertrainingruntimes
