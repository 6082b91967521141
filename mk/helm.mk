# Helm charts and the Kubernetes end to end (issue 4).
# chart-lint needs no cluster: helm lint, helm template with the CI values, every manifest (and the
# DaskCluster the driver generates) validated offline against the Kubernetes schemas of the kind
# cluster's version and the CRD schema shipped in dask-kubernetes.
.PHONY: chart-lint chart-schema chart-push helm-tool operator-install e2e-k8s

HELM_BIN       := $(CURDIR)/.tools/bin/helm
HELM_CHART     := helm/posts-pipeline
HELM_CI_VALUES := $(wildcard $(HELM_CHART)/ci/*-values.yaml)
# The Kubernetes version of the kind cluster (hack/kind/lib.sh), e.g. 1.34.
K8S_SCHEMA_VERSION ?= $(shell awk -F'[=. ]' '/^K8S_VERSION=/{sub("v","",$$2); print $$2"."$$3; exit}' hack/kind/lib.sh)

# helm is built from the Go module proxy by the kind toolchain script (cached); reuse it when present.
$(HELM_BIN):
	bash hack/kind/build-tools.sh helm
	mkdir -p $(dir $@)
	install -m 0755 "$$(ls -d $${POSTS_PIPELINE_CACHE:-/var/cache/posts-pipeline}/tools/helm-*/bin/helm | tail -n 1)" $@

helm-tool: $(HELM_BIN) ## build or reuse helm in .tools/bin

# values.schema.yaml is the source (shared $defs, a description per key); tests/kubernetes/test_chart.py checks
# that the JSON helm reads agrees with it.
chart-schema: $(BIN)/.installed ## regenerate the chart's values.schema.json from values.schema.yaml
	$(BIN)/python -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin), indent=2))' \
	    <$(HELM_CHART)/values.schema.yaml >$(HELM_CHART)/values.schema.json

chart-lint: $(HELM_BIN) $(BIN)/.installed ## helm lint --strict, helm template, validate manifests and the driver's DaskCluster offline
	@$(BIN)/python -c 'import kubernetes_validate' 2>/dev/null || { echo "chart-lint: kubernetes-validate missing from .venv (it belongs in requirements/test-lock.txt)"; exit 1; }
	$(HELM_BIN) lint --strict $(HELM_CHART)
	@for v in $(HELM_CI_VALUES); do echo "$(HELM_BIN) lint --strict -f $$v"; $(HELM_BIN) lint --strict --quiet $(HELM_CHART) -f $$v || exit 1; done
	PYTHONPATH=tests $(BIN)/python -m support.chart --kubernetes-version $(K8S_SCHEMA_VERSION) --helm $(HELM_BIN) $(HELM_CI_VALUES)

# kind-up runs it too (hack/kind/up.sh): the e2e tests and kind-demo install the chart from there.
chart-push: $(HELM_BIN) ## helm package the chart and helm push it to the kind registry (oci://localhost:5001/charts)
	HELM=$(HELM_BIN) bash hack/kind/push-chart.sh

# On the kind cluster, with the operator image `make kind-up` pushed to its registry (.tools/registry.json).
operator-install: $(HELM_BIN) $(BIN)/.installed ## install the dask-kubernetes operator (chart from the pinned package) into the current cluster
	HELM=$(HELM_BIN) PYTHON=$(BIN)/python helm/install-operator.sh $$(jq -r '.images["posts-pipeline-operator"] // empty | "--image " + sub(":[^:]*$$"; "") + " --tag " + sub(".*:"; "")' .tools/registry.json 2>/dev/null)

e2e-k8s: kind-up $(BIN)/.installed ## kind end to end: operator + chart install, kubectl runs, faults, RBAC, uninstall (pytest -m kind tests/kubernetes)
	KUBECONFIG=$(CURDIR)/.tools/kubeconfig PATH=$(CURDIR)/.tools/bin:$$PATH $(BIN)/pytest -m kind tests/kubernetes $(PYTEST_ARGS)
