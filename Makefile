# Osprey: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
TOOL := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/ospreysec/osprey/internal/buildinfo.version=$(VERSION) -X github.com/ospreysec/osprey/internal/buildinfo.commit=$(COMMIT)
# Go test flags; CI sets -race through this.
TESTFLAGS ?= -race -count=1 -timeout=20m

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build a static bin/osprey
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/osprey ./cmd/osprey

# Image tag of make image and make deploy-test.
IMAGE_TAG ?= latest

.PHONY: image
image: ## build the container images osprey, osprey-mailclient and osprey-postgres (from the host's Debian postgresql) FROM scratch with the local Docker engine (IMAGE_TAG)
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' GO='$(GO)' ./deploy/image/build.sh $(IMAGE_TAG)

.PHONY: deploy-test
deploy-test: ## run the Docker fault tests of deploy/compose and the checks of the systemd units and Kubernetes manifests (make test runs them too)
	$(GO) test -count=1 -v -timeout=20m ./deploy/...

.PHONY: peers
peers: ## install the test peers (Debian packages) that are missing, where we can
	@./scripts/install-peers.sh

.PHONY: test
test: peers lint proto-check ## install missing test peers, check generated code and lint, run every test
	$(GO) test $(TESTFLAGS) ./...

.PHONY: test-short
test-short: ## run the unit tests only (no peers, no race detector)
	$(GO) test -count=1 -short ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOL) staticcheck ./...
	cd proto && $(TOOL) buf lint

.PHONY: proto
proto: ## regenerate the Go code of proto/
	cd proto && $(TOOL) buf generate

.PHONY: proto-check
proto-check: proto ## fail when the committed generated code is stale
	@git diff --exit-code -- proto/ || (echo "generated code in proto/ is stale: run make proto and commit"; exit 1)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 30s) each
	@./scripts/fuzz-all.sh $${FUZZTIME:-30s}

.PHONY: bench
bench: ## run the Go benchmarks and the bench/ harnesses
	$(GO) test -run='^$$' -bench=. -benchmem ./...

