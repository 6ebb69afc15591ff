# corekv — build, run, test, lint, bench, cluster.
#
#   make run            build, start a local server, run a short benchmark, print the report
#   make test           every test (unit, end-to-end over loopback, RESP with redis-tools)
#   make lint           rustfmt check + clippy with warnings as errors
#   make bench          corekv vs redis-server vs memcached, pinned, same workload
#   make bench-resp     redis-benchmark against corekv and redis-server
#   make cluster        the seed's experiment on CloudLab (cloudlab/README.md):
#                       make cluster SERVERS=4 CLIENTS=4 BENCH_ARGS="--clients 128 --batch 8192"
#                       (--clients = the seed's -numClients: sessions per client node)
#   make cluster-local  the same orchestration on this machine (default 2 + 2);
#                       NETNS=1 (root): each node in its own network namespace
#   make sweep          cluster sweeps (SWEEP="batch sessions nodes"), CSV + PNG
#   make sweep-local    the same on this machine
#   make fuzz           each libFuzzer target for FUZZ_SECS (default 30) seconds
#                       (needs cargo-fuzz and a nightly toolchain; fuzz/README.md)
#   make man            man pages from the command-line definitions, into man/
#   make completions    bash, zsh and fish completions, into completions/

CARGO   ?= cargo
BIN     := target/release/corekv
SERVERS ?=
CLIENTS ?=
SERVER_ARGS ?=
BENCH_ARGS  ?=
SWEEP ?= batch sessions nodes
NETNS ?= 0

.PHONY: all build release run test lint fmt bench bench-resp cluster cluster-local sweep sweep-local man completions fuzz clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

$(BIN): release

run: release
	bash bench/run.sh

test:
	$(CARGO) test --all-targets --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: release
	bash bench/run-bench.sh

bench-resp: release
	bash bench/resp-bench.sh

cluster: release
	COREKV_BIN=$(abspath $(BIN)) bash cloudlab/run-cluster.sh $(or $(SERVERS),4) $(or $(CLIENTS),4) "$(SERVER_ARGS)" "$(BENCH_ARGS)"

cluster-local: release
	LOCAL=1 NETNS=$(NETNS) COREKV_BIN=$(abspath $(BIN)) bash cloudlab/run-cluster.sh $(or $(SERVERS),2) $(or $(CLIENTS),2) "$(SERVER_ARGS)" "$(BENCH_ARGS)"

sweep: release
	CLIENT_ARGS="$(BENCH_ARGS)" COREKV_BIN=$(abspath $(BIN)) bash cloudlab/sweep.sh $(SWEEP)

sweep-local: release
	LOCAL=1 CLIENT_ARGS="$(BENCH_ARGS)" COREKV_BIN=$(abspath $(BIN)) bash cloudlab/sweep.sh $(SWEEP)

man: release
	$(BIN) man --out man

completions: release
	mkdir -p completions
	$(BIN) completions bash > completions/corekv.bash
	$(BIN) completions zsh > completions/_corekv
	$(BIN) completions fish > completions/corekv.fish

FUZZ_SECS ?= 30

fuzz:
	cd fuzz && for t in native_frame resp_command resp_reply; do \
		$(CARGO) +nightly fuzz run -O $$t -- -max_total_time=$(FUZZ_SECS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf results logs man completions
