# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
MODULES := manifest internal backup transfer restore
PROGRAMS := backup transfer restore
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
WORLD ?= $(CURDIR)/.world
# -count=1: the tests talk to real servers, so a cached result proves nothing.
# -p 2: two test packages at a time (2 cores); a package that uses the shared
# two-site world runs two Elasticsearch nodes (about 0.8 GB each).
GOTEST_FLAGS ?= -count=1 -p 2 -timeout 40m
# Every module's packages, as go.work patterns from the repository root.
PKGS := $(patsubst %,./%/...,$(MODULES))
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all setup build test lint env-up env-down demo drill bench bench-es bench-scale clean

all: build

setup:
	@./scripts/setup.sh

build:
	@mkdir -p bin
	@for p in $(PROGRAMS); do (cd $$p && go build -trimpath -ldflags "$(LDFLAGS)" -o ../bin/$$p .) || exit 1; done

# One go test over all modules, so packages of every module share the -p slots.
test: setup build
	go test $(GOTEST_FLAGS) $(PKGS)

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet $(PKGS)
	@sc=$$(go env GOPATH)/bin/staticcheck; \
	if [ ! -x "$$sc" ] && ! go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); then \
		echo "lint: staticcheck could not be installed from the Go module proxy; skipped"; exit 0; fi; \
	echo "$$sc $(PKGS)"; "$$sc" $(PKGS)

env-up: setup
	@cd internal && go run ./cmd/testworld up -dir $(WORLD)

env-down:
	@cd internal && go run ./cmd/testworld down -dir $(WORLD)

# The main job on a local demo pair of clusters: builds the programs, starts
# the two-site world, backup -> transfer push over SFTP -> restore, compares
# both sites and stops everything it started.
demo: setup
	@cd internal && go run ./cmd/demo

# Failover and failback on the local two-site world: runs every command of
# doc/runbook.md as written, on the site it names, and proves both sites
# equal after each step (internal/cmd/demo/drill.go).
drill: setup
	@cd internal && go run ./cmd/demo -drill $(CURDIR)/doc/runbook.md

# Elasticsearch at scale (bench/es.md): 10 indices, 1 GB of documents on
# prod (BCP_BENCH_SCALE=0.1: 100 MB); first cycle, one index changed, nothing
# changed; each restore beside restore --full of the same set, in one run.
bench-es: setup
	@mkdir -p bench/out
	@set -o pipefail; cd internal && BCP_TESTENV_ES_HEAP=$${BCP_TESTENV_ES_HEAP:-1g} go run ./cmd/demo \
	  -es-bench-mb $$(awk "BEGIN{print int(1024*$${BCP_BENCH_SCALE:-1})}") -docs 2000 -files 100 2>&1 | \
	  tee ../bench/out/es-$$(date -u +%Y%m%dT%H%M%SZ).txt

# Side by side with rsync, sha256sum and mysqldump | gzip in one run; ratios
# in each line. BCP_BENCH_SCALE=0.1 for a quick look. Raw output in bench/out.
bench: setup build
	@mkdir -p bench/out
	@set -o pipefail; { \
	  echo "# manifest: Verify vs sha256sum"; \
	  (cd manifest && go test -run '^$$' -bench 'BenchmarkVerify|SHA256OneCore' -benchtime 1x -timeout 60m .); \
	  echo "# backup: files stage vs rsync -a, MySQL stage vs mysqldump | gzip"; \
	  (cd backup && go test -run '^$$' -bench . -benchtime 1x -timeout 60m .); \
	} 2>&1 | tee bench/out/bench-$$(date -u +%Y%m%dT%H%M%SZ).txt
	@./bench/transfer.sh

# A million-file storage, files stage of each program beside rsync -a, with
# peak RSS (bench/scale.md). BCP_SCALE_FILES=100000 for a quick look.
bench-scale: setup
	@./bench/scale.sh

clean:
	rm -rf bin
