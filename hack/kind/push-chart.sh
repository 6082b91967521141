#!/usr/bin/env bash
# `make chart-push` (and kind-up): package helm/posts-pipeline and push it to
# the local registry as an OCI artifact, oci://$REGISTRY/charts/posts-pipeline
# at the version in its Chart.yaml, as a chart repository serves it. The same
# version pushed again replaces the chart (kind-up pushes on every run, so the
# registry holds the checkout's chart). Prints "<chart ref> <version>" last.
#   HELM=... (default .tools/bin/helm, else from PATH)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
HELM="${HELM:-$REPO_ROOT/.tools/bin/helm}"
[ -x "$HELM" ] || HELM="$(command -v helm)" || { log "helm is needed (make helm-tool)"; exit 2; }
curl -sf -o /dev/null "http://$REGISTRY/v2/" || { log "no registry answers on $REGISTRY (make kind-up starts it)"; exit 1; }

CHART_DIR="$REPO_ROOT/helm/posts-pipeline"
VERSION="$(awk '$1=="version:"{print $2; exit}' "$CHART_DIR/Chart.yaml")"
OUT="$(mktemp -d)"; trap 'rm -rf "$OUT"' EXIT
"$HELM" package "$CHART_DIR" --destination "$OUT" >/dev/null
"$HELM" push "$OUT/posts-pipeline-$VERSION.tgz" "oci://$REGISTRY/charts" --plain-http >&2
echo "oci://$REGISTRY/charts/posts-pipeline $VERSION"
