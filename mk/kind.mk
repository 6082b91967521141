# kind cluster for the Kubernetes tests (issue 6). Everything slow is built by
# hack/kind/*.sh into $(POSTS_PIPELINE_CACHE) (default /var/cache/posts-pipeline),
# keyed by version, so a second run (even from a fresh clone) rebuilds nothing.
.PHONY: kind-up kind-down e2e-kind kind-demo kind-demo-down

KIND_KUBECONFIG := $(CURDIR)/.tools/kubeconfig

kind-up: ## build or reuse the kind toolchain, node image and registry; create the kind cluster; push the project images and the chart to the registry
	bash hack/kind/up.sh

kind-down: ## delete the kind cluster and stop its registry (its volume, with what was pushed, stays)
	bash hack/kind/down.sh

# The Kubernetes path as a user takes it (helm/README.md), on the kind cluster: hack/kind/demo.sh.
kind-demo: $(BIN)/.installed ## kind cluster, MinIO with generated credentials, a sample dump, helm install, one kubectl run followed to its end
	bash hack/kind/demo.sh

kind-demo-down: ## remove what kind-demo created (its namespace; the operator if it installed it), not the cluster
	bash hack/kind/demo-down.sh

# The images are built (or found up to date) first, so that kind-up pushes the current ones to the registry.
e2e-kind: $(BIN)/.installed ## images, kind cluster, then the Kubernetes tests: smoke (tests/kind) and end to end (tests/kubernetes)
	docker/build-image.sh --test
	bash hack/kind/up.sh
	KUBECONFIG=$(KIND_KUBECONFIG) PATH=$(CURDIR)/.tools/bin:$$PATH $(BIN)/pytest -m kind tests/kind tests/kubernetes $(PYTEST_ARGS)
