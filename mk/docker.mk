# Container images and the multi-container Dask test (issue 3).
# `make image` works on a fresh machine: docker/build-image.sh starts an engine
# through hack/docker-engine.sh, builds the local Debian base when missing and
# skips the build entirely when the images already match the sources.

DOCKER_TEST_ARGS ?=

.PHONY: image image-base e2e-docker

image-base: ## build the local Debian bookworm base image (debootstrap, cached)
	hack/docker-engine.sh
	docker/build-base.sh

image: ## build posts-pipeline:<version> and posts-pipeline-operator:<version> (cached by content)
	docker/build-image.sh

e2e-docker: image $(BIN)/.installed ## scheduler + 2 workers + MinIO in containers: results, worker kill, version mismatch
	docker/build-image.sh --test
	docker/build-minio.sh
	$(BIN)/pytest -m docker tests/docker $(DOCKER_TEST_ARGS)
