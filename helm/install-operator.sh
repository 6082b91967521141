#!/usr/bin/env bash
# Install (or upgrade) the dask-kubernetes operator from the Helm chart that ships inside the pinned
# dask-kubernetes package, running the project's operator image (posts-pipeline-operator, built by
# `make image` from the same lock file as the workers). No network is needed: the chart comes from
# .venv; on kind the image comes from the cluster's registry, where `make kind-up` pushed it
# (--image localhost:5001/posts-pipeline-operator --tag <its content tag>, from .tools/registry.json).
#
# Order matters: the CRDs are applied and *established* before the operator starts, so the
# operator never watches a resource type the API server does not serve yet.
#
#   helm/install-operator.sh [--namespace dask-operator] [--release dask-operator]
#                            [--image posts-pipeline-operator] [--tag latest] [--timeout 180s]
#
# Environment: HELM, KUBECTL (default: .tools/bin/… when present, else from PATH), PYTHON (.venv/bin/python),
# KUBECONFIG as usual.
#
# Where the public chart repository can be reached, the equivalent is:
#   helm repo add dask https://helm.dask.org && helm repo update
#   helm install --create-namespace -n dask-operator dask-operator dask/dask-kubernetes-operator \
#     --version <the dask-kubernetes version in requirements/lock.txt> \
#     --set image.name=posts-pipeline-operator --set image.tag=<version>
# (Helm installs the chart's crds/ on first install; `kubectl wait --for condition=established` as below
# before submitting runs.)
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=dask-operator RELEASE=dask-operator IMAGE=posts-pipeline-operator TAG=latest TIMEOUT=180s
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) NAMESPACE=$2; shift 2 ;;
    --release) RELEASE=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "install-operator.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

tool() { if [ -x ".tools/bin/$1" ]; then echo ".tools/bin/$1"; else command -v "$1"; fi; }
HELM=${HELM:-$(tool helm)}
KUBECTL=${KUBECTL:-$(tool kubectl)}
PYTHON=${PYTHON:-.venv/bin/python}
if [ -z "$HELM" ] || [ -z "$KUBECTL" ]; then echo "install-operator.sh: helm and kubectl are needed" >&2; exit 2; fi

CHART=$("$PYTHON" -c 'import pathlib, dask_kubernetes; print(pathlib.Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator")')
VERSION=$("$PYTHON" -c 'import dask_kubernetes; print(dask_kubernetes.__version__)')
echo "dask-kubernetes $VERSION operator chart: $CHART"

# 1. CRDs, then wait until the API server serves them.
"$KUBECTL" apply --server-side --force-conflicts -f "$CHART/crds/"
#    A CRD created a moment ago may have no status yet, which `kubectl wait` reports as an error: retry.
for crd in daskclusters daskworkergroups daskjobs daskautoscalers; do
  for try in $(seq 1 60); do
    if "$KUBECTL" wait --for condition=established --timeout="$TIMEOUT" "crd/$crd.kubernetes.dask.org" 2>/dev/null; then
      break
    fi
    [ "$try" -lt 60 ] || { echo "install-operator.sh: CRD $crd.kubernetes.dask.org not established" >&2; exit 1; }
    sleep 1
  done
done

# 2. The operator (CRDs skipped: applied above, and Helm never upgrades CRDs itself).
#    The shipped Chart.yaml says version 0.0.1-set.by.chartpress, appVersion 2022.4.1 (dask-kubernetes' release
#    tooling fills them in only for the published chart): package it as the installed dask-kubernetes version,
#    so `helm list` says which operator runs. Its pod meets the restricted Pod Security Standard.
PACKAGED=$(mktemp -d); trap 'rm -rf "$PACKAGED"' EXIT
"$HELM" package "$CHART" --version "$VERSION" --app-version "$VERSION" --destination "$PACKAGED" >/dev/null
"$HELM" upgrade --install "$RELEASE" "$PACKAGED"/*.tgz --namespace "$NAMESPACE" --create-namespace --skip-crds \
  --set image.name="$IMAGE" --set image.tag="$TAG" --set image.pullPolicy=IfNotPresent \
  --set podSecurityContext.runAsNonRoot=true --set podSecurityContext.seccompProfile.type=RuntimeDefault \
  --set resources.requests.cpu=50m --set resources.requests.memory=128Mi \
  --set resources.limits.cpu=500m --set resources.limits.memory=512Mi \
  --wait --timeout "$TIMEOUT"
"$KUBECTL" -n "$NAMESPACE" rollout status "deployment/$RELEASE-dask-kubernetes-operator" --timeout="$TIMEOUT" 2>/dev/null ||
  "$KUBECTL" -n "$NAMESPACE" get pods
echo "dask-kubernetes operator $VERSION running in namespace $NAMESPACE (image $IMAGE:$TAG)"
