# ember - top-level convenience targets around CMake (see README.md).
#   make           = make build: release build in build/ (build/bin/ember)
#   make check     : sanitizer (ASan+UBSan) debug build in build-check/ + every test
#   make build-default : the default CMake configuration (RelWithDebInfo, tests on) in
#                    build-default/, built only: what `cmake -S . -B b && cmake --build b`
#                    does for a new user (CI runs it after check)
#   make demo      : build, generate data under build/demo/, run wordcount and pagerank
#   make bench     : build, run bench/*.sh (needs ../shared/tools/measure.py)
#   make bench-ml  : build, run the MLlib clustering/decomposition benchmarks (issue 13)
#   make bench-sql : build, TPC-H-shaped Q1/Q3/Q6 and the sqllogictest pack beside sqlite3
#   make fuzz      : libFuzzer runs of tests/fuzz/fuzz_*.c, FUZZ_SECONDS each (default 30;
#                    CI: FUZZ_SECONDS=5); needs clang with libFuzzer (libclang-rt-dev)
#   make deps      : install the Debian packages the build needs (as root), or say how
#   make format / install / clean
# Works on a fresh Debian 12 with only make and gcc: `deps` installs the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := build

BUILD ?= build
CHECK_BUILD ?= build-check
DEFAULT_BUILD ?= build-default
FUZZ_BUILD ?= build-fuzz
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 30
CTEST_TIMEOUT ?= 900
DEMO := $(BUILD)/demo
EMBER := $(BUILD)/bin/ember

DEB_PACKAGES := cmake pkg-config gcc make libuv1-dev libjansson-dev libzstd-dev \
                libopenblas-dev liblapacke-dev libcriterion-dev libedit-dev libssl-dev
# What the integration tests call besides the build: python3 (HTTP and JSON checks of the
# standalone test), bc (timing arithmetic), procps (pgrep/pkill for executor processes).
CHECK_PACKAGES := $(DEB_PACKAGES) python3 bc procps
# tests/integration/test_slurm.sh runs a single-node Slurm of its own (issue 17).
CHECK_PACKAGES += slurmctld slurmd slurm-client munge

.PHONY: all deps build build-default check demo bench bench-als bench-ml bench-sql fuzz format install clean

all: build

deps:
	@missing=""; \
	for p in $(or $(PACKAGES),$(DEB_PACKAGES)); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "ember: missing Debian packages:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
	    set -e; \
	    DEBIAN_FRONTEND=noninteractive apt-get update; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	    echo "Run as root:"; \
	    echo "  sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$$missing"; \
	    exit 1; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DEMBER_TESTS=OFF \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j$(JOBS)

check:
	@$(MAKE) --no-print-directory deps PACKAGES="$(CHECK_PACKAGES)"
	cmake -S . -B $(CHECK_BUILD) -DEMBER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(CHECK_BUILD) -j$(JOBS)
	ctest --test-dir $(CHECK_BUILD) --output-on-failure -j2 --timeout $(CTEST_TIMEOUT)

# No CMAKE_BUILD_TYPE and no options: the configuration a new user gets.
build-default:
	@$(MAKE) --no-print-directory deps PACKAGES="$(CHECK_PACKAGES)"
	cmake -S . -B $(DEFAULT_BUILD)
	cmake --build $(DEFAULT_BUILD) -j$(JOBS)

# The main job on the embedded default: ALS on Netflix-shaped ratings (scale 0.01: 4.8k
# users, 1.8k items, 1M ratings), then the engine's classic examples on generated data.
DEMO_MASTER ?= local-cluster[2,1]
demo: build
	@mkdir -p $(DEMO)
	@[ -f $(DEMO)/ratings.meta.json ] || { echo "== generating Netflix-shaped ratings (scale 0.01)"; \
	    $(EMBER) gen ratings --scale 0.01 --seed 1 --out $(DEMO)/ratings; }
	@echo "== ALS: rank 10, 10 iterations, lambda 0.02, master $(DEMO_MASTER)"
	@$(EMBER) als --train $(DEMO)/ratings.train.tsv --test $(DEMO)/ratings.test.tsv \
	    --rank 10 --iterations 10 --lambda 0.02 --master '$(DEMO_MASTER)' \
	    --recommend 1 --top 5 --json > $(DEMO)/als.out
	@grep -v '^{' $(DEMO)/als.out || true
	@j=$$(tail -n 1 $(DEMO)/als.out); m=$(DEMO)/ratings.meta.json; \
	    f() { printf '%s' "$$1" | sed -n "s/.*\"$$2\": *\([-0-9.e]*\).*/\1/p"; }; \
	    printf 'ALS test RMSE %.4f (noise floor %.4f, global mean %.4f); %.1f s total, %.1f s training, peak %.0f MiB\n' \
	        "$$(f "$$j" test_rmse)" "$$(f "$$(cat $$m)" noise_floor_rmse)" "$$(f "$$(cat $$m)" global_mean_rmse)" \
	        "$$(f "$$j" total_s)" "$$(f "$$j" train_s)" "$$(f "$$j" peak_rss_mib)"
	@[ -f $(DEMO)/text-64m.txt ] || { echo "== generating 64 MiB of text"; \
	    $(EMBER) gen text --mib 64 --seed 42 --out $(DEMO)/text-64m.txt; }
	@[ -f $(DEMO)/graph-10k.txt ] || { echo "== generating a graph: 10k nodes, 100k edges"; \
	    $(EMBER) gen graph --nodes 10000 --edges 100000 --seed 42 --out $(DEMO)/graph-10k.txt; }
	@rm -rf $(DEMO)/wordcount-out $(DEMO)/pagerank-out
	@echo "== wordcount $(DEMO)/text-64m.txt: top 20 words (count, word)"
	@TIMEFORMAT="wordcount: %R s wall, %U s user; output in $(DEMO)/wordcount-out"; \
	time $(EMBER) run-example wordcount --master '$(DEMO_MASTER)' $(DEMO)/text-64m.txt $(DEMO)/wordcount-out
	@echo "== pagerank $(DEMO)/graph-10k.txt, 10 iterations: top 10 (rank, node)"
	@TIMEFORMAT="pagerank: %R s wall, %U s user; output in $(DEMO)/pagerank-out"; \
	time $(EMBER) run-example pagerank --master '$(DEMO_MASTER)' $(DEMO)/graph-10k.txt 10 $(DEMO)/pagerank-out

# The compute layer's benchmarks (gradient pass beside numpy, broadcasts, latency, wordcount
# of 256 MiB), then issue 2's (wordcount of 1 GiB, reduce_by_key of 50M pairs); ALS has its
# own (bench-als).
bench: build
	@set -e; for b in bench/compute.sh bench/wordcount.sh bench/reduce_by_key.sh; do echo "== $$b"; bash "$$b" "$(BUILD)"; done

bench-als: build
	@bash bench/als.sh "$(BUILD)"

# MLlib clustering and decomposition (issue 13): k-means beside scikit-learn.
# Issue 13's benchmarks: k-means beside scikit-learn, PCA beside numpy and scikit-learn, SVD
# beside scipy (bench/ml_*.sh).
bench-ml: build
	@set -e; for b in bench/ml_kmeans.sh bench/ml_pca.sh bench/ml_svd.sh bench/ml_lr.sh bench/ml_glm.sh bench/ml_nb.sh bench/ml_mlp.sh; do echo "== $$b"; bash "$$b" "$(BUILD)"; done

# Issue 14's SQL benchmark: TPC-H-shaped Q1, Q3, Q6 at scale 1 in ember (local[2] and
# local-cluster[2,1]) beside sqlite3, and the sqllogictest pack's time beside sqlite3's.
bench-sql: build
	@bash bench/sql_tpch.sh "$(BUILD)"

FUZZ_PACKAGES := $(DEB_PACKAGES) clang libclang-rt-dev
fuzz:
	@$(MAKE) --no-print-directory deps PACKAGES="$(FUZZ_PACKAGES)"
	@if ! command -v clang >/dev/null 2>&1; then \
	    echo "make fuzz needs clang with libFuzzer (apt-get install clang); skipping"; exit 1; fi
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	    -DEMBER_SANITIZE=ON -DEMBER_TESTS=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link"
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target ember_static ember_ml_static ember_sql_static
	@set -e; for src in tests/fuzz/fuzz_*.c; do \
	    [ -e "$$src" ] || continue; \
	    name=$$(basename $$src .c); dec=$${name#fuzz_}; \
	    echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    clang -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DEM_TESTING=1 -I. \
	        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $$src \
	        $(FUZZ_BUILD)/lib/libember_sql.a $(FUZZ_BUILD)/lib/libember_ml.a $(FUZZ_BUILD)/lib/libember.a \
	        $$(pkg-config --libs libuv jansson libzstd openblas lapacke libcrypto) \
	        -lpthread -ldl -lm -o $(FUZZ_BUILD)/$$name; \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$dec; \
	    if [ -d tests/fuzz/corpus/$$dec ]; then cp -n tests/fuzz/corpus/$$dec/* $(FUZZ_BUILD)/corpus/$$dec/ 2>/dev/null || true; fi; \
	    $(FUZZ_BUILD)/$$name -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/$$name- \
	        $(FUZZ_BUILD)/corpus/$$dec; \
	done

format:
	@command -v clang-format >/dev/null 2>&1 || { echo "make format needs clang-format"; exit 1; }
	find engine shuffle storage sql mllib cli examples tests -name '*.[ch]' -not -path '*/corpus/*' \
	    2>/dev/null | xargs -r clang-format -i

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) $(DEFAULT_BUILD) $(FUZZ_BUILD)

# test_multihost.sh: network namespaces and veth pairs (ip netns, ip link).
CHECK_PACKAGES += iproute2

# tests/integration/test_k8s_manifests.sh parses docs/deploy/kubernetes/*.yaml (PyYAML).
CHECK_PACKAGES += python3-yaml
