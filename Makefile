# CryptoPill jobs platform. `make dev` runs the whole stack on embedded defaults; `make test` runs
# every test. See README.md.

SHELL := /bin/bash
GO ?= go
MODULES := libs proto services/orchestrator services/straux services/cinimport services/seeder cmd/cpctl
SERVICES := orchestrator straux cinimport seeder
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X cryptopill.dev/jobs/libs/service.version=$(VERSION)
# Packages of every workspace module, e.g. cryptopill.dev/jobs/libs/...
PKGS = $(shell $(GO) list -m | sed 's|$$|/...|')

.PHONY: all build dev test vet fmt-check proto proto-check clean bench-cdc bench-cdc-large bench-jobs bench-straux bench-cinimport

all: build

## build: the binaries orchestrator, straux, cinimport, seeder and cpctl in bin/
build:
	@mkdir -p bin
	@for s in $(SERVICES); do $(GO) build -ldflags "$(LDFLAGS)" -o bin/$$s ./services/$$s || exit 1; done
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/cpctl ./cmd/cpctl

## dev: the whole stack on embedded NATS + a private Postgres in .data/ (Ctrl-C stops it)
dev: build
	./bin/cpctl dev

## test: formatting, vet, generated-code check, and every module's tests with the race detector
test: fmt-check vet proto-check
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

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
