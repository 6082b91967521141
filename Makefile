# posts-pipeline: the one entry point for tasks. `make help` lists them.
# Other task groups (image, kind, ...) live in mk/*.mk and are included below.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements/test-lock.txt

DEMO_SIZE ?= 20MB
DEMO_DATA ?= data/demo/Posts.xml
DEMO_OUT  ?= runs/demo
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help env system-deps demo test unit lint lock

help: ## list the tasks
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The environment is rebuilt whenever the lock file changes.
$(BIN)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

env: $(BIN)/.installed ## create .venv from the lock file

# graphviz's `dot` draws --visualize graphs, an optional feature the tests cover; shellcheck is for
# `make lint` (Debian/Ubuntu).
system-deps:
	@command -v dot >/dev/null || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; } \
	    || echo "warning: could not install graphviz; --visualize and its test need it" >&2
	@# Debian's chromium renders the report pages headless, in the tests that look at them.
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	    || echo "warning: could not install chromium; the tests that render the report pages need it" >&2
	@command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; } \
	    || echo "warning: could not install shellcheck; make lint needs it" >&2

$(DEMO_DATA): | $(BIN)/.installed
	$(BIN)/posts-pipeline generate --size $(DEMO_SIZE) --output $@

demo: $(BIN)/.installed $(DEMO_DATA) ## generate sample data and run the job on the embedded LocalCluster
	$(BIN)/posts-pipeline run --input $(DEMO_DATA) --output $(DEMO_OUT) --overwrite

test: $(BIN)/.installed system-deps helm-tool lint ## every test: lint, the suite, then end to end in Docker and on kind
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) e2e-docker
	$(MAKE) e2e-kind

unit: $(BIN)/.installed system-deps helm-tool lint ## lint and the suite (no Docker engine or cluster), a few minutes
	$(BIN)/pytest $(PYTEST_ARGS)

# Every shell script under docker/, hack/ and helm/ (a #! line naming sh or bash); hack/kind/lib.sh, which
# the kind scripts source, is checked through them (-x follows the source lines, -P from each script's folder).
SHELL_SCRIPTS = $(shell find docker hack helm -type f | sort | xargs awk 'FNR == 1 && /^\#!.*[\/ ](ba)?sh( |$$)/ {print FILENAME}')

lint: $(BIN)/.installed system-deps ## ruff (configured in pyproject.toml) and shellcheck on the shell scripts
	$(BIN)/ruff check .
	shellcheck -x -P SCRIPTDIR $(SHELL_SCRIPTS)

lock: ## re-resolve requirements/*.txt from pyproject.toml (needs network to PyPI)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes \
	    --custom-compile-command "make lock" -o requirements/lock.txt
	$(BIN)/uv pip compile pyproject.toml --extra test --extra graphviz --python-version 3.11 --generate-hashes \
	    --custom-compile-command "make lock" -c requirements/lock.txt -o requirements/test-lock.txt

-include $(sort $(wildcard mk/*.mk))
