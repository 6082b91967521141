# Benchmarks (issue 5): ours against the blog's method and a fast plain-pandas job, same data,
# alternating rounds (bench/). Inputs are generated once into data/bench/ (git-ignored).
# OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (set on some processors here) slow a current numpy: unset
# for `make bench` only, never for the tests; bench/results/latest.json records the BLAS kernel.
SIZE   ?= 200MB
ROUNDS ?= 3
BENCH_ARGS ?= --as-written

.PHONY: bench bench-smoke

bench: $(BIN)/.installed ## benchmark vs the blog's method and pandas (SIZE=200MB ROUNDS=3): table + bench/results/latest.json
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench --size $(SIZE) --rounds $(ROUNDS) $(BENCH_ARGS)

bench-smoke: $(BIN)/.installed ## a tiny benchmark run: the three methods run and agree (no timing judged)
	$(BIN)/python -m bench --size 2MB --rounds 1 --no-limits --shared-cluster --accuracy-tolerance 0.05 \
	    --output bench/results/smoke.json
