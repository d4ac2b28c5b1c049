# pifleet — `make help` lists the targets.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/pifleet/pifleet/hub/internal/cli.Version=$(VERSION) -X github.com/pifleet/pifleet/agent/internal/cli.Version=$(VERSION)
GO ?= go
BIN := bin
# Tests that need the host's real parts (root, netns, agetty, Docker, the
# project's binaries) run in the host run; the ARMv7 run under qemu leaves
# them out by name.
QEMU_SKIP ?= TestNetns|TestAgetty|TestDocker

DEB_ARCHES ?= armhf arm64 amd64
FUZZTIME   ?= 5s
# A fuzzer is NAME (in internal/wire) or DIR:NAME for another package.
FUZZERS    := FuzzDecodeState FuzzDecodeStatus FuzzDecodeCommand FuzzDecodeResult FuzzParseTopic \
              internal/shellwords:FuzzSplit internal/discovery:FuzzBrowse internal/enrol:FuzzParseToken

.PHONY: help build run test test-host test-arm fuzz lint cross bench bench-fleet clean deps deb deploy tool-image

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/pifleet and bin/pifleet-agent for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pifleet ./hub
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pifleet-agent ./agent

run: build ## run the hub (embedded MQTT broker) and an agent for this machine
	scripts/run-local.sh

deps: ## install the Debian packages the tests need (mosquitto, socat, qemu-user-static, …)
	scripts/install-test-deps.sh

test: deps ## run every test: vet and lint, host with -race, then the agent's tests as ARMv7 under qemu
	$(GO) vet ./...
	$(MAKE) --no-print-directory lint test-host test-arm fuzz

# Pinned tool versions; make deps fetches them so a test run does not.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := golang.org/x/tools/cmd/deadcode@v0.52.0

lint: ## staticcheck and deadcode -test: both must print nothing
	$(GO) run $(STATICCHECK) ./...
	@out=$$($(GO) run $(DEADCODE) -test ./...) || exit 1; \
	  if [ -n "$$out" ]; then echo "$$out"; echo "deadcode: the functions above are never reached, not even by a test: delete them or use them" >&2; exit 1; fi

test-host:
	$(GO) test -race -count=1 -timeout 25m ./...

test-arm: ## the agent's unit tests (with internal/, and the console tool's) as ARMv7 (GOARM=7) under qemu-arm-static
	GOOS=linux GOARCH=arm GOARM=7 CGO_ENABLED=0 $(GO) test -count=1 -timeout 15m -exec qemu-arm-static -skip '$(QEMU_SKIP)' ./agent/... ./internal/... ./hub/internal/console/...

fuzz: ## run each fuzzer (wire decoders, shell-word splitter) for FUZZTIME (make test: 5s each; corpus in <pkg>/testdata/fuzz)
	@GO='$(GO)' FUZZTIME='$(FUZZTIME)' scripts/fuzz.sh $(FUZZERS)

deb: ## build the .deb packages (agent + hub) for armhf, arm64, amd64 into dist/
	scripts/build-deb.sh $(DEB_ARCHES)

tool-image: ## the Pis' awscli image from Debian packages, no registry (ARCH=armhf|arm64|amd64 SUITE= MIRROR= TAG= OUT=file.tar)
	scripts/build-tool-image.sh $(if $(ARCH),-a '$(ARCH)') $(if $(SUITE),-s '$(SUITE)') $(if $(MIRROR),-m '$(MIRROR)') $(if $(TAG),-t '$(TAG)') $(if $(OUT),-o '$(OUT)')

deploy: ## install dist/ packages on HOSTS="pi@a pi@b" over ssh (DRY_RUN=1 to plan, PACKAGE=pifleet for hubs)
	@test -n "$(HOSTS)" || { echo 'usage: make deploy HOSTS="pi@a pi@b" [DRY_RUN=1]' >&2; exit 2; }
	scripts/deploy.sh $(if $(DRY_RUN),--dry-run) $(if $(PACKAGE),--package $(PACKAGE)) $(HOSTS)

cross: ## static ARMv7 (Pi 3, 32-bit OS) and arm64 binaries of both programs in bin/
	@for arch in arm arm64; do \
	  suffix=$$arch; [ $$arch = arm ] && suffix=armv7; \
	  for prog in pifleet:./hub pifleet-agent:./agent; do \
	    name=$${prog%%:*}; pkg=$${prog#*:}; \
	    echo "  $(BIN)/$$name-linux-$$suffix"; \
	    CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$name-linux-$$suffix $$pkg || exit 1; \
	  done; \
	done

bench: ## Go benchmarks (hub ingest, fleet over 10k devices, …) and the agent's footprint
	$(GO) test -run '^$$' -bench . -benchmem ./...
	scripts/bench-agent.sh

bench-fleet: deps ## 10,000 simulated Pis against the hub (embedded broker and Mosquitto): time to exact, RSS, CPU, API latency (PIS=19000 MODES=embedded …)
	scripts/bench-fleet.sh

clean: ## remove build output
	rm -rf $(BIN) dist build
