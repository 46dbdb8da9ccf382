# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
MODULES := manifest internal backup transfer restore
PROGRAMS := backup transfer restore
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
WORLD ?= $(CURDIR)/.world
GOTEST_FLAGS ?= -timeout 40m

.PHONY: all setup build test lint env-up env-down demo bench clean

all: build

setup:
	@./scripts/setup.sh

build:
	@mkdir -p bin
	@for p in $(PROGRAMS); do (cd $$p && go build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/$$p .) || exit 1; done

test: setup build
	@set -o pipefail; for m in $(MODULES); do echo "== $$m"; (cd $$m && go test $(GOTEST_FLAGS) ./...) || exit 1; done

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@if command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@latest; then \
		for m in $(MODULES); do (cd $$m && $$(go env GOPATH)/bin/staticcheck ./...) || exit 1; done; fi

env-up: setup
	@cd internal && go run ./cmd/testworld up -dir $(WORLD)

env-down:
	@cd internal && go run ./cmd/testworld down -dir $(WORLD)

clean:
	rm -rf bin
