# CryptoPill jobs platform. `make dev` runs the whole stack on embedded defaults; `make test` runs
# every test. See README.md.

SHELL := /bin/bash
GO ?= go
MODULES := libs proto services/orchestrator services/straux services/cinimport services/seeder cmd/cpctl tests/chaos
SERVICES := orchestrator straux cinimport seeder
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X cryptopill.dev/jobs/libs/service.version=$(VERSION)
# Packages of every workspace module, e.g. cryptopill.dev/jobs/libs/...
PKGS = $(shell $(GO) list -m | sed 's|$$|/...|')

.PHONY: all build dev test natsperm compose-keys vet fmt-check fuzz fuzz-smoke proto proto-check clean bench-cdc bench-cdc-large bench-jobs bench-straux bench-straux-stream bench-cinimport chaos nats-server

all: build

## build: the binaries orchestrator, straux, cinimport, seeder and cpctl in bin/
build:
	@mkdir -p bin
	@for s in $(SERVICES); do $(GO) build -ldflags "$(LDFLAGS)" -o bin/$$s ./services/$$s || exit 1; done
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/cpctl ./cmd/cpctl

## natsperm: regenerate deploy/nats/permissions.conf from the declared topology (libs/natsauth)
natsperm:
	$(GO) run ./libs/natsauth/cmd/natsperm > deploy/nats/permissions.conf

## compose-keys: NATS identities for compose.yaml in .data/compose/nats (kept if present)
compose-keys:
	$(GO) run ./cmd/cpctl nats-keys --containers .data/compose/nats

## dev: the whole stack on embedded NATS + a private Postgres in .data/ (Ctrl-C stops it)
dev: build
	./bin/cpctl dev

## test: formatting, vet, generated-code check, a few seconds of each fuzz target, and every
## module's tests with the race detector
test: fmt-check vet proto-check fuzz-smoke
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Fuzz targets as package:Name. Go fuzzes one target per invocation; each target's seed corpus
# (testdata/fuzz/<Name>/ and its f.Add seeds) also runs as a plain test in `go test`.
FUZZ_TARGETS := \
	./libs/events:FuzzDecode \
	./libs/exchange:FuzzKlines \
	./libs/exchange:FuzzDepth \
	./libs/exchange:FuzzTickers \
	./libs/exchange:FuzzExchangeInfo \
	./libs/exchange:FuzzMyTrades \
	./libs/exchange:FuzzErrorBody \
	./libs/exchange:FuzzDepthEvent \
	./libs/exchange:FuzzTickerEvent \
	./services/orchestrator/internal/relay:FuzzParseChange \
	./services/orchestrator/internal/relay:FuzzDecodeTuple
FUZZTIME ?= 60s
FUZZ_SMOKE_TIME ?= 3s

## fuzz: each fuzz target for FUZZTIME (default 60s); a crash is written to the package's testdata/fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

## fuzz-smoke: each fuzz target for FUZZ_SMOKE_TIME (default 3s), as part of make test
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZ_SMOKE_TIME)

## chaos: the crash suite over the built binaries, a private Postgres and real nats-server processes
## (docs/chaos.md). CHAOS_FLAGS passes flags: CHAOS_FLAGS="-short", "-run nats-kill", "-seed N".
chaos: build nats-server
	$(GO) build -o bin/chaos ./tests/chaos
	./bin/chaos -bin bin $(CHAOS_FLAGS)

## nats-server: the real NATS server, at the version pinned in tests/chaos/go.mod, in bin/
nats-server:
	@mkdir -p bin
	cd tests/chaos && $(GO) build -o ../../bin/nats-server github.com/nats-io/nats-server/v2

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin

-include proto/Makefile.snippet
-include libs/jobs/Makefile.snippet
-include services/orchestrator/Makefile.snippet
-include services/straux/Makefile.snippet
-include services/cinimport/Makefile.snippet
