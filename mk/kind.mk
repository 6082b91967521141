# kind cluster for the Kubernetes tests (issue 6). Everything slow is built by
# hack/kind/*.sh into $(POSTS_PIPELINE_CACHE) (default /var/cache/posts-pipeline),
# keyed by version, so a second run (even from a fresh clone) rebuilds nothing.
.PHONY: kind-up kind-down e2e-kind

KIND_KUBECONFIG := $(CURDIR)/.tools/kubeconfig

kind-up: ## build or reuse the kind toolchain and node image, create the kind cluster, load project images
	bash hack/kind/up.sh

kind-down: ## delete the kind cluster
	bash hack/kind/down.sh

e2e-kind: kind-up $(BIN)/.installed ## bring up kind, then run the Kubernetes tests (pytest -m kind tests/kind)
	KUBECONFIG=$(KIND_KUBECONFIG) PATH=$(CURDIR)/.tools/bin:$$PATH $(BIN)/pytest -m kind tests/kind $(PYTEST_ARGS)
