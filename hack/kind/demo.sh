#!/usr/bin/env bash
# `make kind-demo`: the Kubernetes path in one command, on the project's kind cluster (created as
# `make kind-up` does when it is not up). In namespace $DEMO_NAMESPACE (default posts-demo, created
# and labelled by this script): generated S3 credentials in the Secret s3-creds (never printed),
# MinIO (hack/kind/demo-minio.yaml), a sample dump written into it (hack/kind/demo-sample.yaml),
# the dask-kubernetes operator (helm/install-operator.sh, when the pinned version is not running),
# `helm upgrade --install` of the chart from the kind registry (oci://, as `make kind-up` pushed it,
# with the images pushed there) with that Secret, then one run
# (`kubectl create job --from=cronjob/...`) followed to its end with its log; then it says where
# the results are and what to type next. Each kubectl/helm command is echoed (`+ ...`) as it is
# typed by hand in helm/README.md. Re-running reuses all of it and starts another run;
# `make kind-demo-down` (hack/kind/demo-down.sh) removes what this created.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry.sh"
cd "$REPO_ROOT"
NS="${DEMO_NAMESPACE:-posts-demo}"
RELEASE=demo
CRONJOB="$RELEASE-posts-pipeline"
CREATED_BY=posts-pipeline-kind-demo
T0=$SECONDS

run() { echo "+ $*" >&2; "$@"; }
demo_label() { kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/created-by}'; }
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# 1. Images (skipped when they match the sources), the cluster (reused when up) and its registry,
#    with the images and the chart pushed there; MinIO's image too (its tag names its version).
docker/build-image.sh
MINIO_IMAGE="$(docker/build-minio.sh)"
hack/kind/up.sh
MINIO_REF="$(registry_push "$MINIO_IMAGE" "${MINIO_IMAGE##*:}")"
export KUBECONFIG="$REPO_ROOT/.tools/kubeconfig" PATH="$REPO_ROOT/.tools/bin:$PATH"
pushed() { jq -r "$1" .tools/registry.json; }
IMAGE="$(pushed '.images["posts-pipeline"]')" OPERATOR_IMAGE="$(pushed '.images["posts-pipeline-operator"]')"
CHART="$(pushed .chart)" CHART_VERSION="$(pushed .chart_version)"
t=$SECONDS

# apply_with_image FILE IMAGE REF: kubectl apply FILE with its image IMAGE replaced by REF (in the registry).
apply_with_image() {
  echo "+ sed 's|image: $2\$|image: $3|' $1 | kubectl -n $NS apply -f -" >&2
  grep -q "image: $2\$" "$1" || { log "$1 names no image $2"; exit 1; }
  sed "s|image: $2\$|image: $3|" "$1" | kubectl -n "$NS" apply -f -
}

# job_state JOB: "Complete", "Failed" or "" while it runs.
job_state() {
  local conditions
  conditions="$(kubectl -n "$NS" get job "$1" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')"
  case " $conditions" in *" Complete "*) echo Complete ;; *" Failed "*) echo Failed ;; esac
}

# follow_job JOB TIMEOUT_S: print the log of the job's pod as it runs; succeed if the job completes.
follow_job() {
  local job=$1 deadline=$((SECONDS + $2)) phase state
  until phase="$(kubectl -n "$NS" get pods -l "job-name=$job" -o jsonpath='{.items[0].status.phase}' 2>/dev/null)" &&
        [[ "$phase" =~ ^(Running|Succeeded|Failed)$ ]] || [ -n "$(job_state "$job")" ]; do
    if [ $SECONDS -gt $deadline ]; then
      log "job $job: no pod started within $2 s"; kubectl -n "$NS" get pods -l "job-name=$job" -o wide >&2; return 1
    fi
    sleep 1
  done
  echo "+ kubectl -n $NS logs -f job/$job" >&2
  kubectl -n "$NS" logs -f "job/$job" --tail=-1 || true
  until state="$(job_state "$job")"; [ -n "$state" ]; do
    [ $SECONDS -le $deadline ] || { log "job $job did not finish within $2 s"; return 1; }
    sleep 1
  done
  [ "$state" = Complete ] || { log "job $job failed"; kubectl -n "$NS" describe job "$job" | tail -n 15 >&2; return 1; }
}

# 2. The namespace: ours (labelled) or, if it exists without our label, left alone.
phase="$(kubectl get namespace "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
if [ "$phase" = Terminating ]; then
  log "namespace $NS is being deleted: waiting"; kubectl wait --for=delete "namespace/$NS" --timeout=300s; phase=
fi
if [ -z "$phase" ]; then
  run kubectl create namespace "$NS"
  run kubectl label namespace "$NS" "app.kubernetes.io/created-by=$CREATED_BY" \
    pod-security.kubernetes.io/enforce=restricted
elif [ "$(demo_label)" != "$CREATED_BY" ]; then
  log "namespace $NS exists and was not created by make kind-demo: leaving it alone (DEMO_NAMESPACE=... picks another)"
  exit 2
fi

# 3. The operator, once per cluster. What of it the demo creates is noted on the demo's namespace
#    (annotation posts-pipeline/demo-created), so that kind-demo-down removes that and only that.
OPERATOR_VERSION="$(.venv/bin/python -c 'import dask_kubernetes; print(dask_kubernetes.__version__)')"
operator="$(helm list -n dask-operator -f '^dask-operator$' -a -o json 2>/dev/null | .venv/bin/python -c 'import json, sys
print(*(r["status"] + " " + r["chart"] for r in json.load(sys.stdin)))' 2>/dev/null || true)"
created="$(kubectl get namespace "$NS" -o jsonpath='{.metadata.annotations.posts-pipeline/demo-created}')"
[ -n "$operator" ] || created+=" operator"
kubectl get namespace dask-operator >/dev/null 2>&1 || created+=" operator-namespace"
kubectl get crd daskclusters.kubernetes.dask.org >/dev/null 2>&1 || created+=" crds"
kubectl annotate namespace "$NS" "posts-pipeline/demo-created=${created# }" --overwrite >/dev/null
if [ "$operator" = "deployed dask-kubernetes-operator-$OPERATOR_VERSION" ]; then
  log "dask-kubernetes operator $OPERATOR_VERSION is installed (helm list -n dask-operator)"
else
  run helm/install-operator.sh --image "${OPERATOR_IMAGE%:*}" --tag "${OPERATOR_IMAGE##*:}"
fi

# 4. The S3 credentials, generated once, sent on stdin (never on a command line or in a log).
if ! kubectl -n "$NS" get secret s3-creds >/dev/null 2>&1; then
  echo "+ kubectl -n $NS apply -f -    # Secret s3-creds: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (generated)" >&2
  kubectl -n "$NS" apply -f - <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: s3-creds
  labels: {app.kubernetes.io/part-of: posts-pipeline-demo}
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: demo-$(random_hex 8)
  AWS_SECRET_ACCESS_KEY: $(random_hex 24)
EOF
fi

# 5. MinIO, and the sample dump in it (the Job is idempotent: it keeps a Posts.xml that is there).
apply_with_image hack/kind/demo-minio.yaml posts-pipeline-minio:latest "$MINIO_REF"
run kubectl -n "$NS" rollout status deployment/minio --timeout=300s
run kubectl -n "$NS" delete job demo-sample --ignore-not-found
apply_with_image hack/kind/demo-sample.yaml posts-pipeline:latest "$IMAGE"
follow_job demo-sample 600 || exit 1

# 6. The chart from the registry, with the image from there, reading that bucket with that Secret.
run helm upgrade --install "$RELEASE" "$CHART" --version "$CHART_VERSION" --plain-http -n "$NS" \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
  --set s3.existingSecret=s3-creds --set s3.endpointUrl=http://minio:9000 \
  --set run.input=s3://posts/Posts.xml --set run.outputPrefix=s3://posts/runs \
  --set dask.workerResources.requests.cpu=250m --set dask.workerResources.requests.memory=768Mi \
  --set-json 'run.extraArgs=["--blocksize","2MiB","--no-progress"]' --wait --timeout 5m >/dev/null
log "set-up ready in $((SECONDS - t)) s"

# 7. One run, followed to its end.
RUN="${DEMO_RUN:-run-$(date -u +%Y%m%d-%H%M%S)}"
t=$SECONDS
run kubectl -n "$NS" create job --from="cronjob/$CRONJOB" "$RUN"
if ! follow_job "$RUN" 1800; then
  log "run $RUN failed after $((SECONDS - t)) s; its pods: kubectl -n $NS get pods -l job-name=$RUN"
  exit 1
fi
log "run $RUN succeeded in $((SECONDS - t)) s (kind-demo took $((SECONDS - T0)) s in all)"

# 8. report.html served through a port-forward, as the user will fetch it below.
port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
kubectl -n "$NS" port-forward svc/minio "$port:9000" >/dev/null 2>&1 & FORWARD=$!
served=
for _ in $(seq 1 30); do
  served="$(curl -sf -o /dev/null -w '%{size_download} bytes, %{content_type}' \
    "http://127.0.0.1:$port/posts/runs/$RUN/report.html" 2>/dev/null)" && break
  sleep 1
done
kill "$FORWARD" 2>/dev/null || true
if [ -n "$served" ]; then
  log "report.html served through kubectl port-forward: $served"
else
  log "warning: report.html could not be fetched through kubectl port-forward svc/minio"
fi

cat <<EOF

Results of run $RUN: s3://posts/runs/$RUN/ (report.html, report.json, ..., _SUCCESS last), in MinIO
(Service minio, namespace $NS; credentials in Secret s3-creds). With the kind cluster's tools:
  export KUBECONFIG=$KUBECONFIG PATH=$REPO_ROOT/.tools/bin:\$PATH

report.html (runs/* are readable without a key through the port-forward):
  kubectl -n $NS port-forward svc/minio 9000:9000 &
  curl -o report.html http://localhost:9000/posts/runs/$RUN/report.html && xdg-open report.html

Next:
  kubectl -n $NS create job --from=cronjob/$CRONJOB run-2 && kubectl -n $NS logs -f job/run-2   # another run
  make kind-demo                         # the same, reusing everything: another run
  helm test $RELEASE -n $NS --logs            # driver permissions and S3 reachability
  helm uninstall $RELEASE -n $NS              # the chart and its runs (MinIO and the Secret stay)
  make kind-demo-down                    # everything make kind-demo created
EOF
