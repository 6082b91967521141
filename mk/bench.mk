# Benchmarks (issues 5 and 14): ours against the blog's method, plain pandas, Polars, PySpark and DuckDB on
# the same data, each method a whole process from exec to exit, in alternating rounds (bench/). Inputs
# are generated once into data/bench/ (git-ignored).
# The peers (polars, pyspark, duckdb) live in .venv-bench, built from test-lock.txt plus
# requirements/bench-lock.txt, so that they never enter the project's own lock files. PySpark needs Java
# 17 (`java` on PATH; Debian: openjdk-17-jre-headless, installed by `make bench-env` when apt is there).
# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (set on some processors here) slow a current numpy: unset
# for `make bench` only, never for the tests; bench/results/latest.json records the BLAS kernel.
SIZE   ?= 200MB
ROUNDS ?= 3
BENCH_ARGS ?=
BENCH_VENV ?= .venv-bench
BENCH_BIN  := $(BENCH_VENV)/bin
BENCH_LOCK := requirements/bench-lock.txt

.PHONY: bench bench-smoke bench-env bench-lock java

$(BENCH_BIN)/.installed: $(LOCK) $(BENCH_LOCK) pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/pip install --quiet --require-hashes -r $(LOCK) -r $(BENCH_LOCK)
	$(BENCH_BIN)/pip install --quiet --no-deps -e .
	touch $@

java:
	@command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; } \
	    || echo "warning: could not install Java 17; the PySpark peer will be skipped" >&2

bench-env: $(BENCH_BIN)/.installed java ## .venv-bench: the project plus the peers (polars, pyspark, duckdb) and Java

bench: bench-env ## every method as a whole process (SIZE=200MB ROUNDS=3, or INPUT=Posts.xml): bench/results/latest.json
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BENCH_BIN)/python -m bench --size $(SIZE) --rounds $(ROUNDS) \
	    $(if $(INPUT),--input $(INPUT)) $(BENCH_ARGS)

bench-smoke: bench-env ## every method on a small file, once: they must agree (no timing judged)
	$(BENCH_BIN)/python -m bench --smoke --output bench/results/smoke.json

bench-lock: ## re-resolve requirements/bench-lock.txt from requirements/bench-requirements.txt (needs PyPI)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile requirements/bench-requirements.txt --python-version 3.11 --generate-hashes \
	    --custom-compile-command "make bench-lock" -c $(LOCK) -o $(BENCH_LOCK)
