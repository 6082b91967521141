#!/usr/bin/env bash
# `make kind-demo-down`: remove what `make kind-demo` created, and nothing else: the Helm release
# and the namespace $DEMO_NAMESPACE (default posts-demo) if it carries the demo's label (with it
# MinIO, the Secret, the sample and the runs' Jobs), and the dask-kubernetes operator only if the
# demo installed it. The cluster stays (`make kind-down` deletes it).
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
NS="${DEMO_NAMESPACE:-posts-demo}"
CREATED_BY=posts-pipeline-kind-demo
export KUBECONFIG="$REPO_ROOT/.tools/kubeconfig" PATH="$REPO_ROOT/.tools/bin:$PATH"
run() { echo "+ $*" >&2; "$@"; }

if ! [ -x .tools/bin/kubectl ] || ! [ -f "$KUBECONFIG" ] ||
   ! timeout 30 kubectl get --raw /readyz >/dev/null 2>&1; then
  log "no kind cluster is up: nothing to remove"; exit 0
fi
if ! kubectl get namespace "$NS" >/dev/null 2>&1; then
  log "no namespace $NS: nothing to remove"; exit 0
fi
label="$(kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/created-by}')"
if [ "$label" != "$CREATED_BY" ]; then
  log "namespace $NS was not created by make kind-demo: leaving it alone"; exit 2
fi
created=" $(kubectl get namespace "$NS" -o jsonpath='{.metadata.annotations.posts-pipeline/demo-created}') "

# The release first (its runs' drivers then delete their Dask clusters), then the namespace, while
# the operator still runs to remove the Dask clusters' finalizers; then what the demo added of the operator.
helm status demo -n "$NS" >/dev/null 2>&1 && run helm uninstall demo -n "$NS" --wait --timeout 3m
run kubectl delete namespace "$NS" --timeout=300s
case "$created" in *" operator "*) run helm uninstall dask-operator -n dask-operator --wait --timeout 3m ;;
  *) log "the dask-kubernetes operator was there before make kind-demo: kept" ;; esac
case "$created" in *" operator-namespace "*)
  run kubectl delete namespace dask-operator --ignore-not-found --timeout=300s ;; esac
case "$created" in *" crds "*)
  run kubectl delete crd daskclusters.kubernetes.dask.org daskworkergroups.kubernetes.dask.org \
    daskjobs.kubernetes.dask.org daskautoscalers.kubernetes.dask.org --ignore-not-found ;; esac
log "kind-demo removed; the cluster stays (make kind-down deletes it)"
