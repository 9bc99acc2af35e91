# warren — see README.md. `make demo` runs the demo, `make test` runs every test.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Static (no ld.so at every start: warren starts twice per container) and
# without urfave/cli's man-page generator, whose init costs ~2 ms a start.
TAGS      := urfave_cli_no_docs,netgo,osusergo
LDFLAGS   := -s -w -X main.version=$(VERSION) -linkmode external -extldflags -static
GOFLAGS_B := -trimpath -buildvcs=false -tags $(TAGS)

.PHONY: all build warren warrenctl warrend warren-monitor testinit demo test test-unit test-integration lint clean

all: build

build: warren warrenctl warrend warren-monitor testinit

warren:
	$(GO) build $(GOFLAGS_B) -ldflags '$(LDFLAGS)' -o $(BIN)/warren ./cmd/warren

# The engine's CLI: no cgo, so static without help.
warrenctl:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -ldflags '-s -w -X main.version=$(VERSION)' -o $(BIN)/warrenctl ./cmd/warrenctl

# The engine daemon: no cgo either.
warrend:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -ldflags '-s -w -X main.version=$(VERSION)' -o $(BIN)/warrend ./cmd/warrend

# The per-container monitor (warrend starts one per container): no cgo,
# stdlib, x/sys and internal/ociruntime only, as hundreds of them idle at once.
warren-monitor:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_B) -ldflags '-s -w' -o $(BIN)/warren-monitor ./cmd/warren-monitor

testinit:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -o $(BIN)/testinit ./tests/testinit

demo: warren
	./scripts/demo.sh $(BIN)/warren

lint:
	@out=$$(gofmt -l cmd internal tests integration bench 2>/dev/null); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Unit tests need no root; the integration package runs its root-only tests
# when root and skips with a message otherwise. One `go test` run, so the
# slow suite is built and run once.
test: lint warren warrenctl warrend warren-monitor
	WARREN_BINARY=$(CURDIR)/$(BIN)/warren WARRENCTL_BINARY=$(CURDIR)/$(BIN)/warrenctl \
	WARREND_BINARY=$(CURDIR)/$(BIN)/warrend WARREN_MONITOR_BINARY=$(CURDIR)/$(BIN)/warren-monitor \
		$(GO) test -count=1 ./...

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)

test-integration: warren
	WARREN_BINARY=$(CURDIR)/$(BIN)/warren $(GO) test -count=1 -v ./integration/...

clean:
	rm -rf $(BIN) _build

# Every native fuzz target (func FuzzXxx in a _test.go file) for FUZZTIME
# each, one after another (go test -fuzz takes one target at a time). The
# seed corpora in testdata/fuzz also run as plain tests in `make test`; a
# crash found here is written there and becomes a regression test.
FUZZTIME ?= 10s
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

# The integration tests as root on a cgroup-v2-only kernel: Debian's kernel
# in a qemu VM (TCG, no KVM needed), run once from the root cgroup and once
# from a systemd-like nested one. See scripts/vm/README.md. TCG is slow: the
# fault-injection test runs 10 rounds per pass there (200 on the host), the
# concurrency test 12 parallel ids (50).
.PHONY: test-vm
test-vm: warren testinit
	CGO_ENABLED=0 $(GO) test -c -o _build/vm/integration.test ./integration
	./scripts/vm/run-tests.sh -w $(BIN)/warren -t $(BIN)/testinit -T 720 \
		-e WARREN_FAULT_ROUNDS=10 -e WARREN_CONCURRENT_IDS=12 \
		-g /,/system.slice/warren-tests.service _build/vm/integration.test

# The OCI runtime-tools validation suite (built from the Go module proxy into
# _build/conformance) against warren, one program at a time with a timeout;
# a per-program table; with CONFORMANCE_MIN=N (CI) fewer than N passing programs
# fail the target. CONFORMANCE_PEER=runc (or crun) runs
# the same against that runtime first, for comparison. See docs/conformance.md.
.PHONY: conformance
conformance: warren
	@if [ -n "$(CONFORMANCE_PEER)" ]; then \
		./scripts/conformance/run.sh "$$(command -v $(CONFORMANCE_PEER) || echo /usr/sbin/$(CONFORMANCE_PEER))" $(CONFORMANCE_PEER); fi
	./scripts/conformance/run.sh $(BIN)/warren warren

# warren next to crun and runc, side by side in one run: lifecycle, run and
# exec loops, peak RSS, smallest memory limit. See docs/performance.md.
.PHONY: bench
bench: warren
	./bench/bench.sh $(BIN)/warren

# Image pull + unpack: warrenctl vs skopeo+umoci vs podman from a loopback
# docker-registry (docs/images.md).
.PHONY: bench-images
bench-images: warrenctl
	./bench/pull.py $(BIN)/warrenctl

# The engine next to podman: `run --rm IMAGE true` x50 and the memory the
# monitors (warren-monitor; conmon) and warrend hold per idle container, for
# 200 `sleep 3600` containers (BENCH_RUNS, BENCH_CONTAINERS; bench/engine.py).
.PHONY: bench-engine
bench-engine: warren warrenctl warrend warren-monitor
	python3 bench/engine.py $(BIN)

# warren's bridge networking next to the CNI reference plugins (bridge,
# host-local, portmap, loopback from containernetworking-plugins), per
# container setup + teardown x100 and the growth to 200 kept (bench/netbench),
# then 200 pods on one bridge through warrend: create, reach, rm, nothing
# left. All inside a private network namespace (unshare --net); the host's
# network is never touched (NETBENCH_N, NETBENCH_PODS...; bench/network.py).
.PHONY: bench-network
bench-network: warren warrenctl warrend warren-monitor
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -o _build/netbench ./bench/netbench
	python3 bench/network.py $(BIN) _build/netbench
